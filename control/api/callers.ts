/**
 * Who is calling: the thin hook between a request's connection and the
 * authorization rules (control/service/authorize.ts).
 *
 *   unix socket: the peer's SO_PEERCRED (pid, uid, gid), read once per
 *                connection and kept with it; the rules decide per request.
 *   TCP:         no credentials the kernel vouches for. With a token (checked
 *                before this runs) the caller is the operator, root-equivalent;
 *                with --insecure-no-auth, likewise (the daemon warns about it);
 *                otherwise the request is refused.
 *
 * Where the transport comes from is injectable: fastify's inject() has no
 * real socket, so tests hand in the credentials a request should carry.
 */
import type { Socket } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { BatonError } from '../errors.js';
import type { Authorizer, Caller } from '../service/authorize.js';
import { transportOf as kernelTransport, type Transport } from '../sys/peercred.js';

/** How TCP callers are treated. */
export type TcpAuth = 'token' | 'insecure-no-auth' | 'refuse';

export interface CallerOptions {
  tcp: TcpAuth;
  authorizer: Authorizer;
  /** The transport of a connection (default: ask the kernel about its descriptor). */
  transportOf?: (socket: Socket) => Transport;
}

export function callerResolver(opts: CallerOptions): (req: FastifyRequest) => Caller {
  const transportOf = opts.transportOf ?? kernelTransport;
  // Per connection: credentials of a unix socket peer are those it had at connect().
  const byConnection = new WeakMap<object, Caller>();
  const tcpCaller = (): Caller => {
    if (opts.tcp === 'refuse') {
      throw new BatonError(
        'UNAUTHORIZED',
        'this request came over TCP, and the daemon has no API token to authenticate it: set BATON_TOKEN (or --token) on the daemon and send "Authorization: Bearer <token>", or talk to the unix socket (default /run/baton/api.sock)',
        'no_token_configured',
      );
    }
    return { kind: 'operator', via: opts.tcp };
  };
  return (req) => {
    const socket = req.raw.socket;
    const known = byConnection.get(socket);
    if (known) return known;
    const t = transportOf(socket);
    const caller = t.kind === 'unix' ? opts.authorizer.peer(t.cred) : tcpCaller();
    byConnection.set(socket, caller);
    return caller;
  };
}
