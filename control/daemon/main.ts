/**
 * A process entry for the daemon alone (`node --import tsx control/daemon/main.ts lb [flags]`,
 * `... down [flags]`), used by tests and until the `baton` CLI (control/cli.ts) dispatches here.
 */
import { BatonError } from '../errors.js';
import { configHelp, loadConfig } from './config.js';
import { runDaemon, teardown } from './daemon.js';

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'lb' && (args.includes('--help') || args.includes('-h'))) {
    process.stdout.write(`${configHelp()}\n`);
  } else if (cmd === 'lb') {
    await runDaemon(args, process.env, { handleSignals: true });
  } else if (cmd === 'down') {
    const r = teardown(loadConfig(args, process.env));
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } else {
    process.stderr.write('usage: main.ts lb [flags] | down [--pin-dir <dir>]\n');
    process.exitCode = 2;
  }
} catch (e) {
  process.stderr.write(`baton ${cmd}: ${e instanceof BatonError ? `${e.code}: ${e.message}` : (e as Error).stack}\n`);
  process.exitCode = 1;
}
