/** A mistake in how the CLI was called: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    /** the command whose help to point at */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** Exit codes: scripts can tell "it said no" from "you called it wrong". */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3 } as const;
