/**
 * A small client for baton's v1 REST API (docs/api.md) over HTTP or a unix
 * socket, built on node:http (keep-alive agent; no dependencies). Every
 * non-2xx answer becomes a BatonApiError carrying the problem document;
 * a daemon that does not answer becomes API_UNREACHABLE with what to do.
 */
import http from 'node:http';
import https from 'node:https';
import { ERRORS } from '../errors.js';
import { DEFAULT_API, describeEndpoint, ENV_API, ENV_TOKEN, type Endpoint, parseEndpoint } from './endpoint.js';
import { BatonApiError, isProblem } from './errors.js';
import type {
  BatchResult,
  ClusterStatus,
  DrainStatus,
  ListQuery,
  Migration,
  MigrationRequest,
  Splice,
  SpliceList,
  SpliceRequest,
  Version,
} from './types.js';

export interface ClientOptions {
  /** API address, a URL or unix socket path (default BATON_API, else unix:/run/baton/api.sock) */
  url?: string;
  /** unix socket of the API (instead of url) */
  socketPath?: string;
  /** bearer token (default BATON_TOKEN) */
  token?: string;
  /** per-request timeout in ms (default 30 s; a splice waits up to its quiesce timeout) */
  timeoutMs?: number;
  /** where to read BATON_API / BATON_TOKEN from (default process.env) */
  env?: NodeJS.ProcessEnv;
}

export interface HandoffOptions {
  quiesceTimeoutMs?: number;
}

export interface Response<T> {
  status: number;
  body: T;
}

export interface BatonClient {
  readonly endpoint: Endpoint;
  /** One request; the body of a 2xx answer, parsed when JSON. Throws BatonApiError otherwise. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<Response<T>>;
  createSplice(req: SpliceRequest): Promise<Splice>;
  /** Migrate mode: moves a client connection to a back end's agent. */
  createMigration(req: MigrationRequest): Promise<Migration>;
  batchSplices(items: SpliceRequest[]): Promise<BatchResult[]>;
  listSplices(q?: ListQuery): Promise<SpliceList>;
  /** Every splice, following `next` cursors (bounded by maxItems, default 100,000). */
  allSplices(q?: Omit<ListQuery, 'cursor'>, maxItems?: number): Promise<Splice[]>;
  getSplice(id: string): Promise<Splice>;
  deleteSplice(id: string): Promise<void>;
  handoff(id: string, backend: string, opts?: HandoffOptions): Promise<Splice>;
  health(): Promise<{ status: string }>;
  /** Readiness: true on 200, false on 503 (the problem says why in `detail`). */
  ready(): Promise<{ ready: boolean; detail?: string }>;
  version(): Promise<Version>;
  /** GET /v1/cluster: peers, owned vs forwarded connections, directory lag, drain. */
  cluster(): Promise<ClusterStatus>;
  drainStatus(): Promise<DrainStatus>;
  /** POST /v1/drain: refuse new splices, keep serving what the LB holds (operator or root only). */
  drain(): Promise<DrainStatus>;
  /** DELETE /v1/drain: accept new splices again. */
  undrain(): Promise<DrainStatus>;
  /** Drops idle keep-alive connections (call before exiting). */
  close(): void;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export function resolveEndpoint(opts: Pick<ClientOptions, 'url' | 'socketPath' | 'env'> = {}): Endpoint {
  if (opts.socketPath) return { socketPath: opts.socketPath };
  if (opts.url) return parseEndpoint(opts.url);
  const fromEnv = (opts.env ?? process.env)[ENV_API];
  return parseEndpoint(fromEnv?.trim() ? fromEnv : DEFAULT_API);
}

export function createClient(opts: ClientOptions = {}): BatonClient {
  const endpoint = resolveEndpoint(opts);
  const token = opts.token ?? (opts.env ?? process.env)[ENV_TOKEN] ?? undefined;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base = endpoint.url !== undefined ? new URL(endpoint.url) : undefined;
  const secure = base?.protocol === 'https:';
  const agent = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });

  function request<T>(method: string, path: string, body?: unknown): Promise<Response<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json, application/problem+json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    if (token) headers.authorization = `Bearer ${token}`;
    const basePath = base ? base.pathname.replace(/\/+$/, '') : '';
    const target: http.RequestOptions = base
      ? {
          protocol: base.protocol,
          hostname: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port || (secure ? 443 : 80),
          path: basePath + path,
        }
      : { socketPath: endpoint.socketPath, path };
    return new Promise<Response<T>>((resolve, reject) => {
      const req = (secure ? https : http).request({ ...target, method, headers, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(unreachable(endpoint, e)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          const type = String(res.headers['content-type'] ?? '');
          let parsed: unknown = text;
          if (type.includes('json') && text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(badResponse(method, path, status, `a body that is not JSON: ${text.slice(0, 200)}`));
              return;
            }
          }
          if (status >= 200 && status < 300) {
            resolve({ status, body: parsed as T });
            return;
          }
          if (isProblem(parsed)) reject(BatonApiError.fromProblem(parsed));
          else
            reject(
              badResponse(method, path, status, `status ${status} without a problem document: ${text.slice(0, 200)}`),
            );
        });
      });
      req.on('timeout', () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('error', (e) => reject(unreachable(endpoint, e)));
      req.end(payload);
    });
  }

  const enc = encodeURIComponent;
  const client: BatonClient = {
    endpoint,
    request,
    createSplice: async (r) => (await request<Splice>('POST', '/v1/splices', r)).body,
    createMigration: async (r) => (await request<Migration>('POST', '/v1/migrations', r)).body,
    batchSplices: async (items) =>
      (await request<{ results: BatchResult[] }>('POST', '/v1/splices:batch', { items })).body.results,
    async listSplices(q = {}) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined) qs.set(k, String(v));
      const s = qs.toString();
      return (await request<SpliceList>('GET', `/v1/splices${s ? `?${s}` : ''}`)).body;
    },
    async allSplices(q = {}, maxItems = 100_000) {
      const out: Splice[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listSplices({ ...q, ...(cursor ? { cursor } : {}) });
        out.push(...page.items);
        cursor = page.next ?? undefined;
      } while (cursor && out.length < maxItems);
      return out;
    },
    getSplice: async (id) => (await request<Splice>('GET', `/v1/splices/${enc(id)}`)).body,
    async deleteSplice(id) {
      await request('DELETE', `/v1/splices/${enc(id)}`);
    },
    handoff: async (id, backend, o = {}) =>
      (await request<Splice>('POST', `/v1/splices/${enc(id)}/handoffs`, { backend, ...o })).body,
    health: async () => (await request<{ status: string }>('GET', '/healthz')).body,
    async ready() {
      try {
        await request('GET', '/readyz');
        return { ready: true };
      } catch (e) {
        if (e instanceof BatonApiError && e.status === 503 && e.code !== 'API_UNREACHABLE')
          return { ready: false, detail: e.detail || e.title };
        throw e;
      }
    },
    version: async () => (await request<Version>('GET', '/v1/version')).body,
    cluster: async () => (await request<ClusterStatus>('GET', '/v1/cluster')).body,
    drainStatus: async () => (await request<DrainStatus>('GET', '/v1/drain')).body,
    drain: async () => (await request<DrainStatus>('POST', '/v1/drain')).body,
    undrain: async () => (await request<DrainStatus>('DELETE', '/v1/drain')).body,
    close: () => agent.destroy(),
  };
  return client;
}

/** API_UNREACHABLE for a daemon that could not be asked (also the handoff channel's, so both say the same). */
export function unreachable(endpoint: Endpoint, cause: Error & { code?: string }): BatonApiError {
  const where = describeEndpoint(endpoint);
  const why = cause.code ?? cause.message;
  const notRunning = cause.code === 'ECONNREFUSED' || cause.code === 'ENOENT';
  const detail = notRunning
    ? `nothing listens on ${where} (${why}): is the daemon running? Start it with \`baton lb --interface <dev>\`, or point --api / ${ENV_API} at where it listens`
    : `could not talk to ${where}: ${cause.message}${cause.code === 'EACCES' ? ' (permission denied on the socket: run as root or as a member of the group the daemon gives it, baton lb --api-group)' : ''}`;
  return new BatonApiError({ code: 'API_UNREACHABLE', ...ERRORS.API_UNREACHABLE, detail }, { cause });
}

function badResponse(method: string, path: string, _status: number, what: string): BatonApiError {
  return new BatonApiError({
    code: 'BAD_RESPONSE',
    ...ERRORS.BAD_RESPONSE,
    detail: `${method} ${path} returned ${what}; is --api pointing at a baton daemon of a matching version?`,
  });
}
