/**
 * What the splicer needs from the socket layer. control/tcp implements it
 * with TCP_REPAIR; tests of the orchestration order can substitute a
 * recording implementation.
 */
import type { Endpoint, TcpState } from '../tcp/state.js';
import type { Family } from '../net/addr.js';

export interface SocketOps {
  /** Addresses of an established TCP socket; throws when it is not one. */
  endpoints(fd: number): { family: Family; local: Endpoint; remote: Endpoint };
  /** Bytes sent but not yet acknowledged (SIOCOUTQ), plus unread received bytes (SIOCINQ). */
  queued(fd: number): { unacked: number; unread: number };
  /** Puts every socket in repair mode and reads its full state. */
  capture(fds: number[]): Promise<TcpState[]>;
  /** Repair mode off: the socket works as before (used on rollback). */
  leaveRepair(fd: number): void;
  /** Closes in repair mode: no FIN, no RST. */
  releaseSilently(fd: number): void;
  /** Repair mode on again (no capture): the socket stays silent. */
  enterRepair(fd: number): void;
  /** Writes all of `data` on a socket in normal mode. */
  send(fd: number, data: Buffer): void;
}
