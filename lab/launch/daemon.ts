/**
 * The daemon as users run it, inside a testbed: `baton lb` in a node with
 * its own bpffs and its API on a unix socket (a host path, so reachable from
 * every namespace). Shared by the demo, the end-to-end tests and the benchmarks.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '../../control/sdk/client.js';
import { ROOT } from '../paths.js';
import type { Testbed } from '../testbed/index.js';
import { NODE_CLI } from './baton-cli.js';

export interface DaemonProc {
  proc: ChildProcess;
  /** the API's unix socket (host path; the same inside the node) */
  socketPath: string;
  /** `--api` value for the CLI */
  api: string;
  log: string[];
  /** The daemon's resident memory (VmRSS of its node process), bytes; undefined once it is gone. */
  rssBytes(): number | undefined;
  /** Sockets the daemon's node process holds open; undefined once it is gone. */
  socketCount(): number | undefined;
  /** CPU time (user + system) its node process has used, microseconds; undefined once it is gone. */
  cpuUs(): number | undefined;
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
  const args = [
    'lb',
    ...interfaces.flatMap((i) => ['--interface', i]),
    '--api',
    `unix:${socketPath}`,
    '--state-dir',
    dir,
    '--log-level',
    'warn',
    ...extra,
  ];
  const proc = tb.spawn(node, NODE_CLI[0]!, [...NODE_CLI.slice(1), ...args], {
    bpffs: true,
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
    rssBytes: () => {
      const pid = nodeOfGroup(proc.pid!);
      return pid === undefined ? undefined : vmRssBytes(pid);
    },
    socketCount: () => {
      const pid = nodeOfGroup(proc.pid!);
      return pid === undefined ? undefined : socketsOf(pid);
    },
    cpuUs: () => {
      const pid = nodeOfGroup(proc.pid!);
      return pid === undefined ? undefined : processCpuUs(pid);
    },
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

/** The node process of the process group `pgid` (ip netns exec, sh, node: the daemon is the node one). */
export function nodeOfGroup(pgid: number): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      // After the comm: state ppid pgrp ...
      const pgrp = Number(stat.slice(close + 2).split(' ')[2]);
      if (pgrp === pgid && comm === 'node') return Number(name);
    } catch {
      /* the process ended while the list was read */
    }
  }
  return undefined;
}

/** CPU time a process has used (utime + stime, /proc/<pid>/stat), microseconds; undefined when it is gone. */
export function processCpuUs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the comm: state ppid ... utime (14th field) stime (15th), in USER_HZ (100/s) ticks.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** VmRSS of a process, bytes; undefined when it is gone. */
export function vmRssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Sockets among a process's open descriptors; undefined when it is gone. */
export function socketsOf(pid: number): number | undefined {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  let n = 0;
  for (const fd of names) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed while listed */
    }
  }
  return n;
}
