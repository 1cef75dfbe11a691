/**
 * The baton CLI run from source, and one-shot runs of it (`baton down`,
 * `baton status`, ...) from this process or inside a testbed node. The
 * daemon, a long-running `baton lb`, is started by daemon.ts.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { ROOT } from '../paths.js';
import type { Testbed } from '../testbed/index.js';

/**
 * Node's flags for baton's own processes started here: with
 * BATON_CPU_PROF_DIR set, each (daemon, agent, dispatcher, CLI) writes a
 * V8 CPU profile there when it exits (open it in Chrome DevTools, or
 * summarize it with `node lab/cpu-profile.ts <file>`). For finding where a
 * benchmark's time goes; NODE_OPTIONS cannot carry --cpu-prof.
 */
export const NODE_FLAGS = process.env.BATON_CPU_PROF_DIR
  ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BATON_CPU_PROF_DIR}`, '--cpu-prof-interval=100']
  : [];

/** The CLI, run from source. */
export const NODE_CLI = [process.execPath, ...NODE_FLAGS, '--import', 'tsx', resolve(ROOT, 'control/cli.ts')];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `baton <args>` in this process's namespace. */
export function baton(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((res) => {
    execFile(
      NODE_CLI[0]!,
      [...NODE_CLI.slice(1), ...args],
      { cwd: ROOT, env: { ...process.env, BATON_API: '', BATON_TOKEN: '', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

/** `baton <args>` inside a testbed node (with its bpffs at /sys/fs/bpf). */
export async function batonIn(
  tb: Testbed,
  node: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  const r = await tb.exec(node, NODE_CLI[0]!, [...NODE_CLI.slice(1), ...args], {
    bpffs: true,
    check: false,
    env: { ...process.env, BATON_API: '', BATON_TOKEN: '', ...env },
    timeoutMs: 60_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}
