/**
 * `baton agent` as users run it, inside a testbed node: its blob endpoint on
 * the back end's address, its app socket on a host path (apps in the test
 * process reach it), its XDP program on the node's interfaces with its own
 * bpffs. Resolves once the agent reports agent_started.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Testbed } from '../testbed/index.js';
import { NODE_CLI } from './baton-cli.js';

export interface AgentProc {
  proc: ChildProcess;
  /** stderr lines (the agent's JSON events) */
  log: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface AgentLaunch {
  /** "ip:port" of the blob endpoint */
  listen: string;
  secretFile: string;
  appSocket: string;
  /** further flags (e.g. --app rules) */
  extra?: string[];
}

export async function startAgentIn(tb: Testbed, node: string, o: AgentLaunch): Promise<AgentProc> {
  const proc = tb.spawn(
    node,
    NODE_CLI[0] as string,
    [
      ...NODE_CLI.slice(1),
      'agent',
      '--listen',
      o.listen,
      '--peer-secret-file',
      o.secretFile,
      '--app-socket',
      o.appSocket,
      ...tb.node(node).ifaces.flatMap((i) => ['--interface', i.name]),
      '--pin-dir',
      '/sys/fs/bpf/baton-agent',
      ...(o.extra ?? []),
    ],
    { bpffs: true },
  );
  const log: string[] = [];
  let started = false;
  let exited = false;
  proc.once('exit', () => (exited = true));
  proc.stderr?.on('data', (d: Buffer) => {
    const lines = d.toString().trim().split('\n');
    log.push(...lines);
    if (lines.some((l) => l.includes('agent_started'))) started = true;
  });
  proc.stdout?.resume();
  const deadline = Date.now() + 20_000;
  while (!started) {
    if (Date.now() > deadline || exited) throw new Error(`agent on ${node} did not start: ${log.join('\n')}`);
    await sleep(50);
  }
  return {
    proc,
    log,
    async stop(signal = 'SIGTERM') {
      if (exited) return;
      const gone = new Promise((r) => proc.once('exit', r));
      process.kill(-(proc.pid as number), signal);
      await Promise.race([gone, sleep(10_000)]);
    },
  };
}
