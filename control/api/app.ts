/**
 * The REST API of docs/api.md as a fastify 5 app: TypeBox schemas (validated
 * with the TypeBox compiler: bodies strictly, query strings and params with
 * type conversion), OpenAPI at /openapi.json, problem+json for every error,
 * bearer-token auth and rate limiting when configured, and the caller of
 * every route that acts on sockets or connections (control/api/callers.ts),
 * which the service authorizes. The app only translates HTTP to
 * SpliceService calls; it holds no state of its own.
 */

import type { Socket } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { BatonError } from '../errors.js';
import type { ClusterStatusJson } from '../owner/cluster-status.js';
import { aloneStatus } from '../owner/cluster-status.js';
import type { Caller } from '../service/authorize.js';
import { Drain } from '../service/drain.js';
import { MigrateService } from '../service/migrate-service.js';
import type { SpliceService } from '../service/splice-service.js';
import { versionInfo } from '../service/version.js';
import type { Transport } from '../sys/peercred.js';
import { bearerChecker } from './auth.js';
import { callerResolver } from './callers.js';
import { clusterRoutes } from './cluster-routes.js';
import { migrateRoutes } from './migrate-routes.js';
import { problemOf, sendProblem, toProblem } from './problem.js';
import { spliceRoutes } from './routes.js';
import { Health, Migration, Problem, ProblemResponses, Ready, Splice, Version } from './schemas.js';
import { validatorCompiler } from './validator.js';

/** Told about every answered request (the metrics implement it). `route` is the route pattern, never the raw URL. */
export interface ApiObserver {
  request(method: string, route: string, status: number, seconds: number): void;
}

export interface RateLimitOptions {
  /** Requests each client may make per window. */
  max: number;
  timeWindowMs: number;
}

export interface ApiOptions {
  service: SpliceService;
  /** POST /v1/migrations; without it the route answers MIGRATE_DISABLED. */
  migrations?: MigrateService;
  /**
   * When set, every route but /healthz needs `Authorization: Bearer <token>`,
   * and a TCP caller that has it acts as the operator (root-equivalent).
   */
  token?: string;
  /**
   * No token, and TCP callers act as the operator anyway (labs only: anyone
   * who reaches the port can take over any connection). /readyz says so.
   */
  insecureNoAuth?: boolean;
  /** Where a connection's peer credentials come from (default: SO_PEERCRED); tests inject their own. */
  transportOf?: (socket: Socket) => Transport;
  rateLimit?: RateLimitOptions;
  logger?: FastifyServerOptions['logger'];
  observer?: ApiObserver;
  /** GET /v1/cluster (default: alone, with the service's connections). */
  clusterStatus?: () => Promise<ClusterStatusJson>;
  /** /v1/drain (default: a drain of the service's connections, which refuses nothing unless started). */
  drain?: Drain;
  onDrain?: (what: 'start' | 'cancel', caller: Caller) => void;
}

/** What /readyz and the start-up log say about --insecure-no-auth. */
export const INSECURE_WARNING =
  'the API serves TCP without authentication (--insecure-no-auth): anyone who can reach it acts as root and can take over any connection; set a token (BATON_TOKEN) or use the unix socket';

/** Routes that need no token and are never rate limited (liveness probes must not fail). */
const OPEN_ROUTES = new Set(['/healthz']);

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() when the request arrived: the start of a handoff's clock. */
    receivedAt: number;
  }
}

const pathOf = (url: string): string => {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
};

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    // Bodies are small except batches, which raise their own limit.
    bodyLimit: 128 * 1024,
    // Our own validator compiler reports errors; fastify's ajv is not used.
    ajv: { customOptions: { strict: false } },
    return503OnClosing: true,
    // Errors fastify meets before routing (a URL that does not decode, a bad
    // content-type header) skip the error handler; they get problems too.
    frameworkErrors: (err, req, reply) => {
      void sendProblem(reply, toProblem(err, pathOf(req.url)).problem);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.decorateRequest('receivedAt', 0);

  app.setErrorHandler((err, req, reply) => {
    const { problem, unexpected } = toProblem(err, pathOf(req.url));
    if (unexpected) req.log.error({ err }, 'unexpected error');
    return sendProblem(reply, problem);
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(
      reply,
      problemOf(
        new BatonError(
          'ROUTE_NOT_FOUND',
          `no route ${req.method} ${pathOf(req.url)}; the API is described at GET /openapi.json`,
          'no_route',
        ),
        pathOf(req.url),
      ),
    ),
  );

  app.addHook('onRequest', async (req) => {
    req.receivedAt = performance.now();
  });
  if (opts.observer) {
    const observer = opts.observer;
    app.addHook('onResponse', async (req, reply) => {
      observer.request(
        req.method,
        req.routeOptions.url ?? 'unmatched',
        reply.statusCode,
        (performance.now() - req.receivedAt) / 1000,
      );
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'baton',
        version: versionInfo().version,
        description: 'Splice live TCP connections: the control plane of baton (docs/api.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      ...(opts.token ? { security: [{ bearer: [] }] } : {}),
    },
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  app.addSchema(Splice);
  app.addSchema(Migration);
  app.addSchema(Problem);

  if (opts.rateLimit) {
    const { max, timeWindowMs } = opts.rateLimit;
    await app.register(rateLimit, {
      max,
      timeWindow: timeWindowMs,
      // Requests over a unix socket have no client IP (req.ip undefined), which the default key crashes on: they share one bucket.
      keyGenerator: (req) => req.ip ?? 'unix-socket',
      allowList: (req) => OPEN_ROUTES.has(req.routeOptions.url ?? ''),
      errorResponseBuilder: (_req, ctx) =>
        new BatonError(
          'RATE_LIMITED',
          `more than ${ctx.max} requests in ${ctx.after}; retry after ${Math.ceil(ctx.ttl / 1000)} s or send many splices in one POST /v1/splices:batch`,
          'rate_limited',
        ),
    });
  }

  if (opts.token !== undefined) {
    const check = bearerChecker(opts.token);
    app.addHook('onRequest', async (req, reply) => {
      if (OPEN_ROUTES.has(req.routeOptions.url ?? '')) return;
      try {
        check(req.headers.authorization);
      } catch (e) {
        reply.header('WWW-Authenticate', 'Bearer realm="baton"');
        throw e;
      }
    });
  }

  app.get('/healthz', { schema: { summary: 'The process is alive', response: { 200: Health } } }, async () => ({
    status: 'ok' as const,
  }));

  const insecure = opts.token === undefined && opts.insecureNoAuth === true;
  app.get(
    '/readyz',
    { schema: { summary: 'The datapath is loaded and attached', response: { 200: Ready, ...ProblemResponses } } },
    async () => {
      const why = opts.service.notReadyReason();
      if (why !== undefined) {
        throw new BatonError(
          why.includes('shutting down') ? 'SHUTTING_DOWN' : 'NOT_READY',
          `not ready: ${why}`,
          'not_ready',
        );
      }
      return insecure
        ? { status: 'ok' as const, insecureNoAuth: true as const, warnings: [INSECURE_WARNING] }
        : { status: 'ok' as const };
    },
  );

  app.get(
    '/v1/version',
    {
      schema: {
        summary: 'Versions of baton, its datapath ABI, the kernel and libbpf',
        response: { 200: Version, ...ProblemResponses },
      },
    },
    async () => versionInfo(),
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const callerOf = callerResolver({
    tcp: opts.token !== undefined ? 'token' : insecure ? 'insecure-no-auth' : 'refuse',
    authorizer: opts.service.authorizer,
    ...(opts.transportOf ? { transportOf: opts.transportOf } : {}),
  });
  await app.register(spliceRoutes, { service: opts.service, callerOf });
  const migrations = opts.migrations ?? new MigrateService({ agents: [], operations: opts.service.operations });
  await app.register(migrateRoutes, { service: migrations, callerOf });
  const held = () => opts.service.splicer.records.size + opts.service.inFlightCount;
  const drain = opts.drain ?? new Drain({ held });
  await app.register(clusterRoutes, {
    status: opts.clusterStatus ?? (async () => aloneStatus(held(), drain.check())),
    drain,
    callerOf,
    ...(opts.onDrain ? { onDrain: opts.onDrain } : {}),
  });
  return app;
}
