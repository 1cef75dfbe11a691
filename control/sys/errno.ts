/**
 * errno: reading it after a libc or libbpf call, its symbolic names, and
 * SysError, the one error base for failed system calls. BpfError (the BPF
 * binding) and SocketError (control/tcp) extend it with their own hints, so
 * every such failure carries the operation, the errno and its code, and a
 * message that says what to do.
 */
import { koffi } from './koffi.js';

/** errno of the last native call on this thread. */
export const errno = (): number => koffi.errno();

const names = new Map<number, string>();
for (const [name, value] of Object.entries(koffi.os.errno as Record<string, number>)) {
  if (!names.has(value)) names.set(value, name);
}
names.set(524, 'ENOTSUPP'); // kernel-internal, leaks out of BPF syscalls

export function errnoName(n: number): string {
  return names.get(n) ?? `E${n}`;
}

export function errnoValue(name: string): number {
  const v = (koffi.os.errno as Record<string, number>)[name];
  if (v === undefined) throw new Error(`unknown errno name ${name}`);
  return v;
}

/** Hints for errors, keyed by `${op}:${code}` or `code`. */
export type Hints = Readonly<Record<string, string>>;

export class SysError extends Error {
  override name = 'SysError';
  readonly op: string;
  readonly errno: number;
  readonly code: string;

  /**
   * `detail` names the object (e.g. "of fd 7"); the hint comes from
   * `explanation` when given, else from `hints` by op and code.
   */
  constructor(
    op: string,
    errnoValue: number,
    detail?: string,
    opts: { hints?: Hints; explanation?: string; cause?: unknown } = {},
  ) {
    const code = errnoName(errnoValue);
    const hint = opts.explanation ?? opts.hints?.[`${op}:${code}`] ?? opts.hints?.[code];
    const what = detail ? `${op} ${detail}` : op;
    super(
      `${what} failed: ${code} (errno ${errnoValue})${hint ? `: ${hint}` : ''}`,
      opts.cause === undefined ? {} : { cause: opts.cause },
    );
    this.op = op;
    this.errno = errnoValue;
    this.code = code;
  }
}

/** A failed call's SysError from errno, right after the call. */
export function lastError(op: string, detail?: string): SysError {
  return new SysError(op, errno(), detail);
}
