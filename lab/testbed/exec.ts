/**
 * Running host commands for the testbed: argv only (no shell), a timeout,
 * and on failure a CommandError that names the command, how it failed and
 * what it printed on stderr. runSync is the never-throwing form for exit paths.
 */
import { execFile, execFileSync } from 'node:child_process';

export interface ExecOptions {
  /** bind this node's bpffs at /sys/fs/bpf for the command (see bpffsPath) */
  bpffs?: boolean;
  /** default 60 s */
  timeoutMs?: number;
  /** written to stdin */
  input?: string;
  /** throw CommandError on non-zero exit (default true) */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** exit code; -1 if killed by a signal or timeout */
  code: number;
}

/** A command that failed: says which one, how, and what it printed on stderr. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
    how: string,
  ) {
    const err = stderr.trim();
    super(`\`${argv.map(shellQuote).join(' ')}\` ${how}${err ? `: ${err}` : ''}`);
    this.name = 'CommandError';
  }
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs a command (argv, no shell); rejects with CommandError unless check is false. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 60_000, env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr, code: 0 });
        const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        const code = typeof e.code === 'number' ? e.code : -1;
        if (opts.check === false && typeof e.code !== 'string') return resolve({ stdout, stderr, code });
        const how =
          typeof e.code === 'string'
            ? `could not start (${e.code})`
            : e.killed
              ? `timed out after ${opts.timeoutMs ?? 60_000} ms`
              : e.signal
                ? `was killed by ${e.signal}`
                : `failed (exit ${code})`;
        reject(new CommandError(argv, e.code ?? null, stdout, stderr, how));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous variant for exit paths; never throws, returns stdout or null. */
export function runSync(argv: readonly string[]): string | null {
  const [file, ...args] = argv;
  try {
    return execFileSync(file!, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch {
    return null;
  }
}
