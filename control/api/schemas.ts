/**
 * The REST contract of docs/api.md as TypeBox schemas: request validation
 * (fastify's ajv), response serialisation and the OpenAPI document all come
 * from these, and the service's input types must accept what they describe
 * (the routes pass Static<...> values straight to it).
 */
import { type Static, Type } from '@sinclair/typebox';
import { CONNECTION_STATES } from '../datapath/connection-plan.js';
import { ERRORS } from '../errors.js';
import {
  DEFAULT_LIST_LIMIT,
  DEFAULT_MIGRATE_TIMEOUT_MS,
  MAX_BATCH_ITEMS,
  MAX_LIST_LIMIT,
  MAX_MIGRATE_TIMEOUT_MS,
  MAX_PREFIX_BASE64_CHARS,
  MAX_PREFIX_BYTES,
  MAX_QUIESCE_TIMEOUT_MS,
} from '../service/limits.js';

/** Linux pids fit in 22 bits (PID_MAX_LIMIT); fds in an int. */
const Pid = Type.Integer({ minimum: 1, maximum: 4_194_304, description: 'process id of the front end' });
const Fd = Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'descriptor number in that process' });
const Address = Type.String({
  minLength: 3,
  maxLength: 64,
  description: '"ip:port", "[ipv6]:port" for IPv6',
  examples: ['198.18.1.2:40312'],
});
const Prefix = Type.String({
  maxLength: MAX_PREFIX_BASE64_CHARS,
  pattern: '^[A-Za-z0-9+/]*={0,2}$',
  description: `base64 of the client bytes the front end has read and not forwarded (at most ${MAX_PREFIX_BYTES} bytes); baton delivers them to the back end`,
});
const QuiesceTimeoutMs = Type.Integer({
  minimum: 0,
  maximum: MAX_QUIESCE_TIMEOUT_MS,
  description: 'how long to wait for a quiet moment before answering NOT_QUIESCENT',
});
const Id = Type.String({ pattern: '^[0-9]{1,20}$', description: 'connection id (decimal u64)' });
const State = Type.Union(CONNECTION_STATES.map((s) => Type.Literal(s)));

export const SocketRef = Type.Object({ pid: Pid, fd: Fd }, { additionalProperties: false });

export const SpliceByDescriptor = Type.Object(
  {
    client: SocketRef,
    backend: SocketRef,
    prefix: Type.Optional(Prefix),
    quiesceTimeoutMs: Type.Optional(QuiesceTimeoutMs),
  },
  { additionalProperties: false, title: 'SpliceByDescriptor' },
);

export const SpliceByAddress = Type.Object(
  {
    pid: Pid,
    client: Address,
    vip: Address,
    backend: Address,
    local: Type.Optional(
      Type.String({
        ...Address,
        description:
          'LB side of the back-end connection; needed when the front end holds several connections to the same back end',
      }),
    ),
    prefix: Type.Optional(Prefix),
    quiesceTimeoutMs: Type.Optional(QuiesceTimeoutMs),
  },
  { additionalProperties: false, title: 'SpliceByAddress' },
);

export const SpliceBody = Type.Union([SpliceByDescriptor, SpliceByAddress], { $id: 'SpliceBody' });
export type SpliceBody = Static<typeof SpliceBody>;

export const HandoffBody = Type.Object(
  { backend: Address, quiesceTimeoutMs: Type.Optional(QuiesceTimeoutMs) },
  { additionalProperties: false },
);

/** Items are checked one by one (a bad item fails alone), so the batch schema only bounds the list. */
export const BatchBody = Type.Object(
  { items: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_BATCH_ITEMS }) },
  { additionalProperties: false },
);

/** POST /v1/migrations (migrate mode): the client socket, the back end's agent, the bytes the front end read. */
export const MigrationBody = Type.Object(
  {
    client: SocketRef,
    agent: Address,
    received: Type.Optional(
      Type.String({
        maxLength: MAX_PREFIX_BASE64_CHARS,
        pattern: '^[A-Za-z0-9+/]*={0,2}$',
        description: `base64 of the client bytes the front end has read (at most ${MAX_PREFIX_BYTES} bytes): the restored socket holds them unread`,
      }),
    ),
    appProtocol: Type.Optional(
      Type.String({ minLength: 1, maxLength: 32, pattern: '^[\\x21-\\x7e]+$', examples: ['http/1.1'] }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_MIGRATE_TIMEOUT_MS,
        description: `how long the agent may take to confirm (default ${DEFAULT_MIGRATE_TIMEOUT_MS} ms)`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type MigrationBody = Static<typeof MigrationBody>;

export const Migration = Type.Object(
  {
    id: Type.String({ description: 'migration id (decimal u64), as the agent and its app see it' }),
    client: Type.String(),
    vip: Type.String(),
    agent: Type.String(),
    backend: Type.String({ description: "where the client's segments go from now on (the agent's IP)" }),
    flowId: Type.Integer({ description: 'the flow id in the ports of the forwarded segments' }),
    queuedBytes: Type.Integer({ description: 'received bytes the restored socket holds unread' }),
    durationUs: Type.Integer({ description: "request received to the LB's socket released" }),
    phasesUs: Type.Object(
      {
        take: Type.Integer({ description: "the front end's socket taken, the agent's channel ready" }),
        block: Type.Integer({ description: 'flow id and MIGRATED entry in BLOCK, the reservation sent' }),
        capture: Type.Integer({ description: 'TCP_REPAIR capture' }),
        blob: Type.Integer({ description: 'state blob encoded' }),
        reserve: Type.Integer({
          description:
            "waiting for the agent's held (its answer to the flow-id reservation) once the blob was ready (≈ 0: it came during the capture), and the entry to FORWARD",
        }),
        agent: Type.Integer({
          description: 'blob sent to confirmation: restore and hand-off on the back end, and the round trip',
        }),
        release: Type.Integer({ description: "the LB's socket released silently" }),
      },
      { description: 'where the time went (µs)' },
    ),
  },
  { $id: 'Migration' },
);

export const IdParams = Type.Object({ id: Id });

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT })),
    cursor: Type.Optional(Id),
    state: Type.Optional(State),
    backend: Type.Optional(Address),
  },
  { additionalProperties: false },
);

// ---------------------------------------------------------------- responses

const Traffic = Type.Object({
  packets: Type.Integer(),
  bytes: Type.Integer(),
  fin: Type.Boolean(),
  rst: Type.Boolean(),
  lastSeenMs: Type.Union([Type.Integer(), Type.Null()], {
    description: 'milliseconds since the datapath last saw a segment; null before the first',
  }),
});

const Handoff = Type.Object({
  index: Type.Integer(),
  backend: Type.String(),
  local: Type.String(),
  seqStart: Type.Integer(),
  seqDelta: Type.Integer(),
  ackDelta: Type.Integer(),
  tsvalDelta: Type.Integer(),
  tsecrDelta: Type.Integer(),
  wscaleIn: Type.Integer(),
  wscaleOut: Type.Integer(),
  timestamps: Type.Boolean(),
  retired: Type.Boolean({ description: 'a later handoff replaced this back end; its leg was closed' }),
});

export const Splice = Type.Object(
  {
    id: Type.String(),
    state: State,
    family: Type.Union([Type.Literal(4), Type.Literal(6)]),
    client: Type.String(),
    vip: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    durationUs: Type.Union([Type.Integer(), Type.Null()], {
      description: 'time the splice took (request received to sockets released); null for recovered connections',
    }),
    recovered: Type.Boolean({ description: 'rebuilt from the pinned table after a daemon restart' }),
    ownerUid: Type.Integer({
      minimum: 0,
      description:
        'uid that created the connection: only it and privileged callers see and act on it (0: root or a token holder, and recovered connections whose owner was not saved)',
    }),
    handoffs: Type.Array(Handoff),
    traffic: Type.Object({ toBackend: Traffic, toClient: Traffic }),
  },
  { $id: 'Splice' },
);

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.Union(Object.keys(ERRORS).map((c) => Type.Literal(c))),
    detail: Type.String(),
    reason: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem document (application/problem+json)' },
);
export type Problem = Static<typeof Problem>;

/** Every error answer is a problem document; routes list these so the OpenAPI document says so. */
export const ProblemResponses = { '4xx': Type.Ref(Problem), '5xx': Type.Ref(Problem) };

export const BatchResult = Type.Union([
  Type.Object({ status: Type.Literal(201), splice: Type.Ref(Splice) }),
  Type.Object({ status: Type.Integer(), error: Type.Ref(Problem) }),
]);

export const BatchResponse = Type.Object({ results: Type.Array(BatchResult) });
export const ListResponse = Type.Object({
  items: Type.Array(Type.Ref(Splice)),
  next: Type.Union([Type.String(), Type.Null()]),
});

export const Health = Type.Object({ status: Type.Literal('ok') });
export const Ready = Type.Object({
  status: Type.Literal('ok'),
  insecureNoAuth: Type.Optional(
    Type.Literal(true, {
      description:
        'the API listens on TCP without authentication (--insecure-no-auth): anyone who can reach it acts as root',
    }),
  ),
  warnings: Type.Optional(Type.Array(Type.String())),
});
export const Version = Type.Object({
  version: Type.String(),
  abi: Type.Integer(),
  kernel: Type.String(),
  libbpf: Type.String(),
});
