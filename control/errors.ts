/**
 * baton's error catalogue. Every error a user can meet has a stable code
 * (what scripts match on), an HTTP status (what the REST API answers) and a
 * message that says what happened and what to do.
 */
export const ERRORS = {
  SPLICE_REFUSED: { status: 409, title: 'The two connections cannot be joined byte-exactly' },
  NOT_QUIESCENT: { status: 409, title: 'A connection kept moving data; no quiet moment to splice' },
  ALREADY_SPLICED: { status: 409, title: 'A connection with this 4-tuple is already in the table' },
  SOCKET_UNUSABLE: { status: 409, title: 'The socket is not an established TCP socket baton can capture' },
  TABLE_FULL: { status: 507, title: 'The connection table is full' },
  NOT_FOUND: { status: 404, title: 'No such connection' },
  HANDOFFS_EXHAUSTED: { status: 409, title: 'The connection already holds the maximum number of handoffs' },
  DATAPATH: { status: 500, title: 'The datapath refused an operation' },
  // Client side (SDK, CLI): the daemon could not be asked, or answered something that is not the contract.
  API_UNREACHABLE: { status: 503, title: 'The baton daemon is not answering' },
  BAD_RESPONSE: { status: 502, title: 'The baton daemon answered something unexpected' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class BatonError extends Error {
  override readonly name = 'BatonError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = ERRORS[code].status;
  }
}
