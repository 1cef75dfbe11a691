/**
 * baton as users run it, inside a testbed: the daemon (`baton lb`) in a node
 * with its own bpffs and its API on a unix socket (reachable from every
 * namespace), and the dispatcher front end (control/dispatcher) on the VIP.
 * Shared by the demo, the end-to-end tests and the benchmarks.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatcherConfig } from '../../control/dispatcher/config.js';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { createClient } from '../../control/sdk/client.js';
import { ROOT } from './env.js';
import type { Testbed } from './testbed.js';

/** The CLI, run from source. */
export const NODE_CLI = [process.execPath, '--import', 'tsx', resolve(ROOT, 'control/cli.ts')];

export interface DaemonProc {
  proc: ChildProcess;
  /** the API's unix socket (host path; the same inside the node) */
  socketPath: string;
  /** `--api` value for the CLI */
  api: string;
  log: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `baton lb` in `node`, attached to `interfaces`; resolves once /healthz answers. */
export async function startDaemon(
  tb: Testbed,
  node: string,
  interfaces: string[],
  extra: string[] = [],
  opts: { socketPath?: string } = {},
): Promise<DaemonProc> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-lb-'));
  // The temp dir is root's alone (0700); a test whose unprivileged callers need the socket names one elsewhere.
  const socketPath = opts.socketPath ?? join(dir, 'api.sock');
  // The record of changed host settings goes with the run too (its namespace
  // is deleted with the testbed); a test of baton down's restore passes its own --state-dir in extra.
  const args = ['lb', ...interfaces.flatMap((i) => ['--interface', i]), '--api', `unix:${socketPath}`, '--state-dir', dir, '--log-level', 'warn', ...extra];
  const proc = tb.spawn(node, NODE_CLI[0]!, [...NODE_CLI.slice(1), ...args], { bpffs: true, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  let exited = false;
  proc.once('exit', () => (exited = true));
  const client = createClient({ socketPath, timeoutMs: 1000 });
  try {
    for (let i = 0; ; i++) {
      if (exited) throw new Error(`baton lb exited at start: ${log.join('').slice(-3000)}`);
      if (i > 300) throw new Error(`baton lb did not answer /healthz within 30 s: ${log.join('').slice(-3000)}`);
      try {
        await client.health();
        break;
      } catch {
        await sleep(100);
      }
    }
  } finally {
    client.close();
  }
  return {
    proc,
    socketPath,
    api: `unix:${socketPath}`,
    log,
    async stop(signal = 'SIGTERM') {
      if (!exited) {
        const gone = new Promise((r) => proc.once('exit', r));
        process.kill(-proc.pid!, signal); // the process group: ip netns exec, sh, node
        await Promise.race([gone, sleep(15_000)]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface DispatcherProc {
  proc: ChildProcess;
  events: DispatchEvent[];
  stop(): Promise<void>;
}

/** Runs a command as `uid` (same gid, no supplementary groups): argv for tb.spawn / tb.exec. */
export const asUser = (uid: number, argv: string[]): [string, string[]] => [
  'setpriv',
  ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...argv],
];

/** Starts the dispatcher in the LB node (as `opts.uid`, default root); resolves once it reports ready. */
export async function startDispatcher(
  tb: Testbed,
  cfg: DispatcherConfig,
  opts: { uid?: number } = {},
): Promise<DispatcherProc> {
  const argv = [
    process.execPath,
    '--import',
    'tsx',
    resolve(ROOT, 'control/dispatcher/main.ts'),
    '--config',
    JSON.stringify(cfg),
  ];
  const [cmd, args] = opts.uid === undefined ? [argv[0] as string, argv.slice(1)] : asUser(opts.uid, argv);
  const proc = tb.spawn('lb', cmd, args, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        process.kill(-proc.pid!, 'SIGTERM');
        await Promise.race([gone, sleep(5000)]);
      }
    },
  };
}
