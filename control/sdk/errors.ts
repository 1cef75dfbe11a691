/**
 * The SDK's one error type: what the daemon answered as a problem document
 * (RFC 9457), or why it could not be asked. `code` is a control/errors.ts
 * code (scripts and front ends match on it); `reason` refines refusals
 * (e.g. SPLICE_REFUSED / unacked_data).
 */
import { type ErrorCode, problemType } from '../errors.js';
import type { Problem } from './types.js';

export class BatonApiError extends Error {
  override readonly name = 'BatonApiError';
  /** A control/errors.ts code; a newer daemon may send codes this SDK does not know. */
  readonly code: ErrorCode | (string & {});
  /** HTTP status of the answer; for API_UNREACHABLE, 503 (nothing was answered). */
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly reason: string | undefined;
  readonly instance: string | undefined;

  constructor(
    p: { code: string; status: number; title: string; detail?: string; reason?: string; instance?: string },
    options?: { cause?: unknown },
  ) {
    super(p.detail ? `${p.title}: ${p.detail}` : p.title, options);
    this.code = p.code;
    this.status = p.status;
    this.title = p.title;
    this.detail = p.detail ?? '';
    this.reason = p.reason;
    this.instance = p.instance;
  }

  static fromProblem(p: Problem): BatonApiError {
    return new BatonApiError(p);
  }

  /** The problem document this error stands for (what `--json` prints). */
  toJSON(): Problem {
    return {
      type: problemType(this.code),
      title: this.title,
      status: this.status,
      code: this.code,
      detail: this.detail,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.instance ? { instance: this.instance } : {}),
    };
  }
}

export function isProblem(x: unknown): x is Problem {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as Record<string, unknown>;
  return typeof p.code === 'string' && typeof p.title === 'string' && typeof p.status === 'number';
}
