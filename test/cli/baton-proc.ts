/**
 * Running the real `baton` command in tests: the daemon (`baton lb`) inside
 * a testbed node with its own bpffs, its API on a unix socket (reachable
 * from every namespace), and one-shot CLI invocations from the test process
 * or inside a node.
 */
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../control/sdk/client.js';
import { ROOT } from '../lib/env.js';
import type { Testbed } from '../lib/testbed.js';

export const CLI = resolve(ROOT, 'control/cli.ts');
export const NODE_CLI = [process.execPath, '--import', 'tsx', CLI];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `baton <args>` in this process's namespace. */
export function baton(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((res) => {
    execFile(NODE_CLI[0]!, [...NODE_CLI.slice(1), ...args], { cwd: ROOT, env: { ...process.env, BATON_API: '', BATON_TOKEN: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `baton <args>` inside a testbed node (with its bpffs at /sys/fs/bpf). */
export async function batonIn(tb: Testbed, node: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await tb.exec(node, NODE_CLI[0]!, [...NODE_CLI.slice(1), ...args], { bpffs: true, check: false, env: { ...process.env, BATON_API: '', BATON_TOKEN: '', ...env }, timeoutMs: 60_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

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
export async function startDaemon(tb: Testbed, node: string, interfaces: string[], extra: string[] = []): Promise<DaemonProc> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-lb-'));
  const socketPath = join(dir, 'api.sock');
  const args = ['lb', ...interfaces.flatMap((i) => ['--interface', i]), '--api', `unix:${socketPath}`, '--log-level', 'warn', ...extra];
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
