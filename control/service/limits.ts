/**
 * The API's limits: what one request may carry and ask for. docs/api.md
 * states them; the schemas (control/api/schemas.ts), the service and the
 * dispatcher take them from here. No dependencies, so a front end can use
 * them without loading the socket layer.
 */
/** Client bytes a splice request may carry (docs/api.md: prefix ≤ 64 KiB). */
export const MAX_PREFIX_BYTES = 64 * 1024;
/** Items of one batch request. */
export const MAX_BATCH_ITEMS = 256;
/**
 * Items of one batch in progress at once. A splice is mostly synchronous
 * work on this one thread, so running more at once adds no throughput; it
 * only keeps every item's flows blocked (client data dropped) until nearly
 * the whole batch is done. A few at once still lets the others proceed while
 * one waits for its sockets to go quiet.
 */
export const BATCH_CONCURRENCY = 8;
/** Longest quiesce wait a request may ask for (ms). */
export const MAX_QUIESCE_TIMEOUT_MS = 60_000;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

/** Characters of a base64 text of MAX_PREFIX_BYTES bytes (RFC 4648, padded). */
export const MAX_PREFIX_BASE64_CHARS = Math.ceil(MAX_PREFIX_BYTES / 3) * 4;
/** How long an agent may take to confirm a migration when the request names no timeout (ms), and at most. */
export const DEFAULT_MIGRATE_TIMEOUT_MS = 2000;
export const MAX_MIGRATE_TIMEOUT_MS = 30_000;
