/**
 * What the splicer needs from the socket layer. control/tcp implements it
 * with TCP_REPAIR; tests of the orchestration order can substitute a
 * recording implementation.
 */

import type { Family } from '../net/addr.js';
import type { Endpoint, TcpState } from '../tcp/state.js';

export interface SocketOps {
  /** Addresses of an established TCP socket; throws when it is not one. */
  endpoints(fd: number): { family: Family; local: Endpoint; remote: Endpoint };
  /** Bytes sent but not yet acknowledged (SIOCOUTQ), plus unread received bytes (SIOCINQ). */
  queued(fd: number): { unacked: number; unread: number };
  /**
   * Puts every socket in repair mode and reads its full state. `endpoints`:
   * what endpoints() answered for each fd, when the caller has it (saves
   * reading the addresses again). Synchronous when it can be (no await on
   * the splice's hot path), else a promise.
   */
  capture(
    fds: number[],
    endpoints?: ReadonlyArray<{ family: Family; local: Endpoint; remote: Endpoint } | undefined>,
  ): TcpState[] | Promise<TcpState[]>;
  /** Repair mode off: the socket works as before (rollback; with windowProbe false, before sending on it). */
  leaveRepair(fd: number, opts?: { windowProbe?: boolean }): void;
  /** Closes in repair mode: no FIN, no RST. */
  releaseSilently(fd: number): void;
  /** Repair mode on again (no capture): the socket stays silent. */
  enterRepair(fd: number): void;
  /** Writes all of `data` on a socket in normal mode. */
  send(fd: number, data: Buffer): void;
  /** Closes a socket normally (FIN, or RST if unread data is left). */
  close(fd: number): void;
  /**
   * The network namespace a socket lives in, as a handle for connect(),
   * finish() and reset() (undefined: the calling thread's own). Handles are
   * cached per namespace and live as long as the SocketOps.
   */
  netnsOf(fd: number): number | undefined;
  /**
   * For each tuple (from the local side), whether a live TCP socket of the
   * calling thread's namespace holds it: a leased leg port must not be one
   * another front end's unspliced connection already uses.
   */
  tuplesInUse(tuples: ReadonlyArray<{ local: Endpoint; remote: Endpoint }>): boolean[];
  /**
   * Opens a connection (established when this resolves); `mss` is advertised
   * to the peer; `mark` is the socket's SO_MARK (the leg's option profile); `localPort` chooses the local port once the source address
   * is known (asked again when a live socket holds the tuple).
   */
  connect(
    remote: Endpoint,
    family: Family,
    opts: { mss?: number; mark?: number; timeoutMs: number; netns?: number; localPort?: (localIp: string) => number },
  ): Promise<number>;
  /** Recreates a connection from `state` in repair mode, silent for good: it only holds the 4-tuple. */
  placeholder(state: TcpState, netns?: number): number;
  /** Recreates a connection from `state` and closes it cleanly: the peer gets a FIN. */
  finish(state: TcpState, netns?: number): void;
  /** Recreates a connection with these sequence numbers and resets it: the peer gets a RST. */
  reset(s: Pick<TcpState, 'family' | 'local' | 'remote' | 'sndNxt' | 'rcvNxt'>, netns?: number): void;
}
