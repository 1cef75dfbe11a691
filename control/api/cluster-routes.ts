/**
 * The operations routes (issue 12): the cluster as this LB sees it, and its
 * drain. Every route names its caller (TCP without a token is refused as
 * everywhere); reading is open to every caller, changing the drain is for
 * privileged callers only (control/service/authorize.ts, rule 3).
 *
 *   GET    /v1/cluster  cluster id, address, live peers, owned vs forwarded, directory lag, drain
 *   GET    /v1/drain    the drain state
 *   POST   /v1/drain    start draining (idempotent)
 *   DELETE /v1/drain    serve again
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { ClusterStatusJson } from '../owner/cluster-status.js';
import { type Caller, operationDecision } from '../service/authorize.js';
import type { Drain } from '../service/drain.js';
import { ClusterStatus, DrainStatus } from './cluster-schemas.js';
import { ProblemResponses } from './schemas.js';

export interface ClusterRoutesOptions {
  /** The cluster's status now (alone: says so). */
  status: () => Promise<ClusterStatusJson>;
  drain: Drain;
  callerOf: (req: FastifyRequest) => Caller;
  /** Told when an operator starts or cancels a drain (the daemon logs it). */
  onDrain?: (what: 'start' | 'cancel', caller: Caller) => void;
}

export const clusterRoutes: FastifyPluginAsyncTypebox<ClusterRoutesOptions> = async (
  app,
  { status, drain, callerOf, onDrain },
) => {
  /** None of these routes takes parameters: anything in the query string is a mistake, said. */
  const querystring = Type.Object({}, { additionalProperties: false });
  const admin = (req: FastifyRequest, what: string): Caller => {
    const caller = callerOf(req);
    const refusal = operationDecision(caller, what);
    if (refusal) throw refusal;
    return caller;
  };

  app.get(
    '/v1/cluster',
    {
      schema: {
        querystring,
        summary: 'The cluster as this LB sees it: peers, owned vs forwarded connections, directory lag, drain',
        response: { 200: ClusterStatus, ...ProblemResponses },
      },
    },
    async (req) => {
      callerOf(req);
      return status();
    },
  );

  app.get(
    '/v1/drain',
    { schema: { querystring, summary: "This LB's drain state", response: { 200: DrainStatus, ...ProblemResponses } } },
    async (req) => {
      callerOf(req);
      return drain.check();
    },
  );

  app.post(
    '/v1/drain',
    {
      schema: {
        querystring,
        summary: 'Drain this LB: refuse new splices (DRAINING), keep serving what it holds',
        response: { 200: DrainStatus, ...ProblemResponses },
      },
    },
    async (req) => {
      const caller = admin(req, 'drain this LB');
      const view = drain.start();
      onDrain?.('start', caller);
      return view;
    },
  );

  app.delete(
    '/v1/drain',
    {
      schema: {
        querystring,
        summary: 'Stop draining: accept new splices again',
        response: { 200: DrainStatus, ...ProblemResponses },
      },
    },
    async (req) => {
      const caller = admin(req, 'stop the drain of this LB');
      const view = drain.cancel();
      onDrain?.('cancel', caller);
      return view;
    },
  );
};
