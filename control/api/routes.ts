/**
 * The /v1/splices routes (docs/api.md): each one validates, names its
 * caller, calls the service (which authorizes the caller), answers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { BatonError } from '../errors.js';
import type { Caller } from '../service/authorize.js';
import { MAX_BATCH_ITEMS, MAX_PREFIX_BASE64_CHARS } from '../service/limits.js';
import type { SpliceService } from '../service/splice-service.js';
import { problemOf } from './problem.js';
import {
  BatchBody,
  BatchResponse,
  HandoffBody,
  IdParams,
  ListQuery,
  ListResponse,
  ProblemResponses,
  type Splice,
  SpliceBody,
} from './schemas.js';
import { compileChecker } from './validator.js';

const checkSpliceBody = compileChecker(SpliceBody);

/** Largest body a batch may have: every item at its largest prefix, plus the JSON around it. */
const BATCH_BODY_LIMIT = MAX_BATCH_ITEMS * (MAX_PREFIX_BASE64_CHARS + 1024);

declare module 'fastify' {
  interface FastifyRequest {
    /** Who asks (control/api/callers.ts); set on every route of this plugin before its handler runs. */
    caller: Caller | null;
  }
}

export interface SpliceRoutesOptions {
  service: SpliceService;
  callerOf: (req: FastifyRequest) => Caller;
}

export const spliceRoutes: FastifyPluginAsyncTypebox<SpliceRoutesOptions> = async (app, { service, callerOf }) => {
  const SpliceRef = { $ref: 'Splice#' } as unknown as typeof Splice;
  // Every route here acts on sockets or connections: none runs without a caller.
  app.decorateRequest('caller', null);
  app.addHook('onRequest', async (req) => {
    req.caller = callerOf(req);
  });
  const caller = (req: FastifyRequest): Caller => req.caller as Caller;

  app.post(
    '/v1/splices',
    {
      schema: {
        summary: "Join a front end's client and back-end sockets",
        body: SpliceBody,
        response: { 201: SpliceRef, ...ProblemResponses },
      },
    },
    async (req, reply) => {
      const splice = await service.splice(caller(req), req.body, req.receivedAt);
      return reply.code(201).header('Location', `/v1/splices/${splice.id}`).send(splice);
    },
  );

  app.post(
    '/v1/splices::batch',
    {
      bodyLimit: BATCH_BODY_LIMIT,
      schema: {
        summary: `Up to ${MAX_BATCH_ITEMS} splices in one call, each independent`,
        body: BatchBody,
        response: { 200: BatchResponse, ...ProblemResponses },
      },
    },
    async (req) => {
      const valid: Array<{ at: number; body: SpliceBody }> = [];
      const results: Array<Record<string, unknown>> = new Array(req.body.items.length);
      req.body.items.forEach((item, at) => {
        if (checkSpliceBody.check(item)) {
          valid.push({ at, body: item });
          return;
        }
        const errors = checkSpliceBody
          .errors(item)
          .map((e) => ({ path: `body/items/${at}${e.path}`, message: e.message }));
        const p = problemOf(
          new BatonError(
            'BAD_REQUEST',
            `item ${at} is not a splice request (by descriptor or by address): ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
            'schema',
          ),
          `/v1/splices:batch/items/${at}`,
          errors,
        );
        results[at] = { status: p.status, error: p };
      });
      const done = await service.spliceBatch(
        caller(req),
        valid.map((v) => v.body),
        req.receivedAt,
      );
      done.forEach((r, i) => {
        const at = (valid[i] as { at: number }).at;
        if (r.ok) results[at] = { status: 201, splice: r.splice };
        else results[at] = { status: r.error.status, error: problemOf(r.error, `/v1/splices:batch/items/${at}`) };
      });
      return { results } as never;
    },
  );

  app.get(
    '/v1/splices',
    {
      schema: {
        summary: 'Spliced connections, by id, paged and filtered',
        querystring: ListQuery,
        response: { 200: ListResponse, ...ProblemResponses },
      },
    },
    async (req) => service.list(caller(req), req.query) as never,
  );

  app.get(
    '/v1/splices/:id',
    {
      schema: {
        summary: 'One connection: state, traffic, handoffs',
        params: IdParams,
        response: { 200: SpliceRef, ...ProblemResponses },
      },
    },
    async (req) => service.get(caller(req), req.params.id),
  );

  app.delete(
    '/v1/splices/:id',
    {
      schema: {
        summary: 'Abort: reset both ends and remove the entries',
        params: IdParams,
        response: { 204: Type.Null({ description: 'aborted' }), ...ProblemResponses },
      },
    },
    async (req, reply) => {
      await service.abort(caller(req), req.params.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/splices/:id/handoffs',
    {
      schema: {
        summary: "Move the connection's next client bytes to another back end",
        params: IdParams,
        body: HandoffBody,
        response: { 201: SpliceRef, ...ProblemResponses },
      },
    },
    async (req, reply) => {
      const splice = await service.handoff(caller(req), req.params.id, req.body, req.receivedAt);
      return reply.code(201).send(splice);
    },
  );
};
