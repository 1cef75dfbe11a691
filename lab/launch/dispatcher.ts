/**
 * The dispatcher front end (control/dispatcher) as users run it, in the
 * LB node on the VIP; its JSON event lines are collected for the caller.
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatcherConfig } from '../../control/dispatcher/config.js';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { ROOT } from '../paths.js';
import type { Testbed } from '../testbed/index.js';
import { asUser } from './as-user.js';
import { NODE_FLAGS } from './baton-cli.js';
import { nodeOfGroup, processCpuUs } from './daemon.js';

export interface DispatcherProc {
  proc: ChildProcess;
  events: DispatchEvent[];
  /** CPU time (user + system) its node process has used, microseconds; undefined once it is gone. */
  cpuUs(): number | undefined;
  stop(): Promise<void>;
}

/** Starts the dispatcher in the LB node (`opts.node`, default "lb"; as `opts.uid`, default root); resolves once it reports ready. */
export async function startDispatcher(
  tb: Testbed,
  cfg: DispatcherConfig,
  opts: { uid?: number; node?: string } = {},
): Promise<DispatcherProc> {
  const argv = [
    process.execPath,
    ...NODE_FLAGS,
    '--import',
    'tsx',
    resolve(ROOT, 'control/dispatcher/main.ts'),
    '--config',
    JSON.stringify(cfg),
  ];
  const [cmd, args] = opts.uid === undefined ? [argv[0] as string, argv.slice(1)] : asUser(opts.uid, argv);
  const proc = tb.spawn(opts.node ?? 'lb', cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: DispatchEvent[] = [];
  const errs: string[] = [];
  proc.stderr?.on('data', (d: Buffer) => errs.push(d.toString()));
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => events.push(JSON.parse(l) as DispatchEvent));
  for (let i = 0; !events.some((e) => e.event === 'ready'); i++) {
    if (i > 200 || proc.exitCode !== null) throw new Error(`dispatcher did not start: ${errs.join('')}`);
    await sleep(50);
  }
  return {
    proc,
    events,
    cpuUs: () => {
      const pid = nodeOfGroup(proc.pid as number);
      return pid === undefined ? undefined : processCpuUs(pid);
    },
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        process.kill(-proc.pid!, 'SIGTERM');
        await Promise.race([gone, sleep(5000)]);
      }
    },
  };
}
