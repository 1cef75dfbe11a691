/**
 * RFC 9457 problem documents for every error the API answers: catalogue
 * errors (BatonError), fastify's own (schema, body parser, not found) and
 * anything unexpected (500 INTERNAL, logged). One place decides the status,
 * code and wording a client sees.
 */
import type { FastifyReply } from 'fastify';
import { BatonError, ERRORS, type ErrorCode, problemType } from '../errors.js';
import { toBatonError } from '../service/errors.js';
import type { Problem } from './schemas.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function problemOf(e: BatonError, instance?: string, errors?: Problem['errors']): Problem {
  return {
    type: problemType(e.code),
    title: ERRORS[e.code].title,
    status: e.status,
    code: e.code,
    detail: e.message,
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
    ...(instance !== undefined ? { instance } : {}),
    ...(errors?.length ? { errors } : {}),
  };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p);
}

/** What fastify attaches to the errors it raises itself. */
interface FastifyishError {
  statusCode?: number;
  code?: string;
  message?: string;
  validation?: Array<{ instancePath?: string; message?: string; params?: unknown }>;
  validationContext?: string;
}

/** fastify status -> catalogue code, for the errors fastify raises before a route runs. */
const BY_STATUS: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  404: 'ROUTE_NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
};

/** Schema errors -> a problem whose detail names every field that is wrong. */
function validationProblem(err: FastifyishError, instance: string): Problem {
  const part = err.validationContext ?? 'request';
  const errors = (err.validation ?? [])
    .slice(0, 10)
    .map((v) => ({ path: `${part}${v.instancePath ?? ''}`, message: v.message ?? 'invalid' }));
  const detail = `the ${part} does not match the API schema: ${errors.map((e) => `${e.path} ${e.message}`).join('; ') || err.message}; see GET /openapi.json`;
  return problemOf(new BatonError('BAD_REQUEST', detail, 'schema'), instance, errors);
}

/**
 * Any thrown value -> the problem to answer with. `unexpected` is true when
 * it is a bug (a 5xx that no catalogue error announced) and deserves a log line.
 */
export function toProblem(err: unknown, instance: string): { problem: Problem; unexpected: boolean } {
  if (err instanceof BatonError) return { problem: problemOf(err, instance), unexpected: false };
  const f = (err ?? {}) as FastifyishError;
  if (f.validation) return { problem: validationProblem(f, instance), unexpected: false };
  const status = typeof f.statusCode === 'number' ? f.statusCode : 0;
  if (status >= 400 && status < 500) {
    const code = BY_STATUS[status] ?? 'BAD_REQUEST';
    const p = problemOf(new BatonError(code, f.message || ERRORS[code].title, f.code?.toLowerCase()), instance);
    // Keep the real status of rarer 4xx fastify answers (e.g. 405), never turn them into 5xx.
    return { problem: { ...p, status }, unexpected: false };
  }
  const be = toBatonError(err);
  return { problem: problemOf(be, instance), unexpected: be.code === 'INTERNAL' };
}
