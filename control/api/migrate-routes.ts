/**
 * POST /v1/migrations (migrate mode, docs/api.md): validates, names its
 * caller, calls the migrate service (which authorizes the caller as for a
 * splice: descriptors only of processes it could ptrace), answers 201 with
 * the migration, or a problem after which the front end still holds the
 * client's connection, untouched.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { Caller } from '../service/authorize.js';
import type { MigrateService } from '../service/migrate-service.js';
import { type Migration, MigrationBody, ProblemResponses } from './schemas.js';

export interface MigrateRoutesOptions {
  service: MigrateService;
  callerOf: (req: FastifyRequest) => Caller;
}

export const migrateRoutes: FastifyPluginAsyncTypebox<MigrateRoutesOptions> = async (app, { service, callerOf }) => {
  const MigrationRef = { $ref: 'Migration#' } as unknown as typeof Migration;
  app.post(
    '/v1/migrations',
    {
      schema: {
        summary: "Move a front end's client connection to a back end's agent (migrate mode)",
        body: MigrationBody,
        response: { 201: MigrationRef, ...ProblemResponses },
      },
    },
    async (req, reply) => {
      const m = await service.migrate(callerOf(req), req.body, req.receivedAt);
      return reply.code(201).send(m);
    },
  );
};
