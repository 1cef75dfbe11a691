/**
 * The dispatcher as a process (what the demo starts in the LB namespace):
 *   node --import tsx control/dispatcher/main.ts --config <file.json | '{...json}'>
 * Prints one JSON event per line on stdout ({"event":"ready"...} first,
 * then "spliced" / "relayed" / "rejected" / "closed" per connection); stats
 * on SIGUSR2 ({"event":"stats",...}). Exits on SIGTERM/SIGINT. baton's API
 * comes from the config's "api", else BATON_API / BATON_TOKEN.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { createDispatcher } from './dispatcher.js';

const line = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help || !values.config) {
    process.stderr.write(
      'usage: dispatcher --config <file.json | inline JSON>\n(see control/dispatcher/config.ts for the fields)\n',
    );
    return values.help ? 0 : 2;
  }
  const cfg = loadConfig(values.config);
  const d = createDispatcher(cfg, { onEvent: line });
  await d.warm(5000);
  await d.listen();
  process.on('SIGUSR2', () => line({ event: 'stats', ...d.stats() }));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await d.close();
  line({ event: 'stopped', ...d.stats() });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(
      `dispatcher: ${e instanceof ConfigError ? `configuration: ${e.message}` : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(e instanceof ConfigError ? 2 : 1);
  },
);
