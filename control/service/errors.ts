/**
 * Every failure the service can meet, as a BatonError of the catalogue
 * (control/errors.ts): socket-layer and BPF errors are translated here, once,
 * so the API answers a stable code and never a bare 500 for something the
 * caller can fix.
 */
import { BpfError } from '../bpf/index.js';
import { BatonError, type ErrorCode } from '../errors.js';
import { SocketError } from '../tcp/errors.js';

/** errno code of a failing socket call -> catalogue code and reason. */
const SOCKET_CODES: Record<string, [ErrorCode, string]> = {
  ESRCH: ['SOCKET_NOT_FOUND', 'no_process'],
  EBADF: ['SOCKET_NOT_FOUND', 'no_descriptor'],
  EPERM: ['SOCKET_ACCESS_DENIED', 'ptrace_denied'],
  EACCES: ['SOCKET_ACCESS_DENIED', 'ptrace_denied'],
  ENOTSOCK: ['SOCKET_UNUSABLE', 'not_a_socket'],
  ENOTCONN: ['SOCKET_UNUSABLE', 'not_connected'],
  // connect() to a new back end during a handoff.
  ECONNREFUSED: ['BACKEND_UNREACHABLE', 'connection_refused'],
  ETIMEDOUT: ['BACKEND_UNREACHABLE', 'timed_out'],
  EHOSTUNREACH: ['BACKEND_UNREACHABLE', 'host_unreachable'],
  ENETUNREACH: ['BACKEND_UNREACHABLE', 'network_unreachable'],
};

export function toBatonError(e: unknown): BatonError {
  if (e instanceof BatonError) return e;
  if (e instanceof SocketError) {
    const [code, reason] = SOCKET_CODES[e.code] ?? (['SOCKET_UNUSABLE', e.code.toLowerCase()] as [ErrorCode, string]);
    return new BatonError(code, e.message, reason, { cause: e });
  }
  if (e instanceof BpfError) return new BatonError('DATAPATH', e.message, e.code.toLowerCase(), { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new BatonError(
    'INTERNAL',
    `${msg} (this is a bug in baton: please report it with the daemon log)`,
    'unexpected',
    { cause: e },
  );
}
