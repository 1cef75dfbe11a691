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
  BPF_OBJECT_MISSING: { status: 500, title: 'A BPF object file baton loads was not found' },
  // Client side (SDK, CLI): the daemon could not be asked, or answered something that is not the contract.
  API_UNREACHABLE: { status: 503, title: 'The baton daemon is not answering' },
  BAD_RESPONSE: { status: 502, title: 'The baton daemon answered something unexpected' },
  // The service layer (control/service, control/api, control/daemon).
  BAD_REQUEST: { status: 400, title: 'The request does not match the API schema' },
  UNAUTHORIZED: { status: 401, title: 'A valid bearer token is required' },
  SOCKET_ACCESS_DENIED: { status: 403, title: 'baton may not take descriptors from this process' },
  // Authorization (control/service/authorize.ts): the caller's uid, not baton's, decides.
  FORBIDDEN_PROCESS: { status: 403, title: 'You may not name the sockets of a process you could not ptrace' },
  FORBIDDEN_CONNECTION: { status: 403, title: 'The connection belongs to another user' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route' },
  SOCKET_NOT_FOUND: { status: 404, title: 'No such process or socket descriptor' },
  SOCKET_AMBIGUOUS: { status: 409, title: 'More than one socket of the process matches the addresses' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body must be JSON' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  INTERNAL: { status: 500, title: 'baton failed unexpectedly' },
  BACKEND_UNREACHABLE: { status: 502, title: 'The new back end could not be reached' },
  NOT_READY: { status: 503, title: 'The datapath is not loaded and attached' },
  SHUTTING_DOWN: { status: 503, title: 'The daemon is shutting down' },
  // control/service/drain.ts: an operator drains the LB (baton lb drain, POST /v1/drain).
  DRAINING: { status: 503, title: 'This LB is draining: it serves the connections it holds and takes no new splices' },
  // Operations on the whole LB (drain): only the operator (token) or root/CAP_SYS_PTRACE.
  FORBIDDEN_OPERATION: { status: 403, title: 'Only the operator or root may do this' },
  CONFIG_INVALID: { status: 400, title: 'The daemon configuration is invalid' },
  // control/daemon/host-settings.ts: the sysctls baton sets on attach and restores on baton down.
  HOST_SETTINGS: {
    status: 500,
    title: 'A host setting (sysctl) baton changes could not be read, set, recorded or restored',
  },
  // control/tcp/blob: a connection-state blob that is truncated, corrupt, oversized or of an unknown version.
  BLOB_INVALID: { status: 400, title: 'The connection-state blob is invalid; nothing was restored' },
  // control/store: the shared store (owner directory, peers, checkpoints), embedded or Redis (--store).
  STORE_UNAVAILABLE: { status: 503, title: 'The shared store (Redis, --store) cannot be reached or refused baton' },
  STORE_REFUSED: { status: 400, title: 'A store key, id or value is malformed or too large' },
  // control/datapath/fid-table.ts (migrate): the agent's flow-id mapping table already maps this (client IP, flow id).
  FLOW_ID_IN_USE: { status: 409, title: 'The flow id is already mapped for this client address' },
  // Owner forwarding (004, control/datapath/owner.ts): peers, VIPs, second chance, owner entries.
  OWNER_ENTRY_CONFLICT: { status: 409, title: 'The connection table already holds this flow, as another kind' },
  OWNER_MAP_FULL: { status: 507, title: 'An owner-forwarding map (peers or VIPs) is full' },
  // control/agent, control/migrate: the blob channel between an LB and a back end's agent.
  AGENT_UNREACHABLE: { status: 503, title: "The back end's agent cannot be reached or did not answer" },
  AGENT_UNAUTHENTICATED: { status: 502, title: "The agent refused this LB's shared secret, or is not a baton agent" },
  AGENT_REFUSED: { status: 502, title: 'The agent refused the migration; the LB still holds the connection' },
  // control/service/migrate-service.ts: POST /v1/migrations on an LB.
  MIGRATE_DISABLED: {
    status: 503,
    title: 'This LB migrates no connections (started without --agent and --agent-secret-file)',
  },
  AGENT_UNKNOWN: { status: 400, title: "The agent is not one of this LB's --agent addresses" },
  // control/agent/down.ts: `baton agent down` while the agent still serves its app socket.
  AGENT_RUNNING: { status: 409, title: 'A baton agent is running on this host; stop it before tearing it down' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** Where the problem types of RFC 9457 documents live: one URL per code. */
export const PROBLEM_TYPE_BASE = 'https://baton.dev/problems/';

/** The problem type URL of an error code (`TABLE_FULL` -> .../problems/table-full). */
export const problemType = (code: string): string => `${PROBLEM_TYPE_BASE}${code.toLowerCase().replace(/_/g, '-')}`;

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
