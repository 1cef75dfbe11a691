/**
 * Back-end legs whose tuple baton reserves without a socket.
 *
 * Once a connection is spliced, its leg-2 tuple (LB address:port -> back
 * end) must not be given to a new connection: the datapath would take that
 * connection's packets for the spliced one's. Reserving it with a socket
 * (LegRecord.heldFd: the leg's own socket, or a placeholder in repair mode)
 * costs a descriptor and a full tcp_sock per spliced connection for its
 * whole life.
 *
 * Instead, legs can take their local port from a range baton owns:
 *   - the kernel never hands a port of the range to connect() or bind(0):
 *     the default range lies above the default ephemeral range
 *     (net.ipv4.ip_local_port_range 32768-60999), and reserveLegPorts() adds
 *     it to net.ipv4.ip_local_reserved_ports, which holds even when an
 *     administrator widens the ephemeral range;
 *   - inside the range, ports are only bound explicitly, and only to a port
 *     baton chose (legPortFor): one whose tuple has no entry in the
 *     connection table. The table's back-end entry IS the reservation: it
 *     lives exactly as long as the spliced connection, and survives a
 *     daemon restart (pinned), so nothing else needs to be held or rebuilt.
 * A leg whose port lies outside the range (a front end that let the kernel
 * choose) is still held with a socket, as before.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { BatonError } from '../errors.js';

export interface PortRange {
  lo: number;
  hi: number;
}

/** Above the kernel's default ephemeral range (32768-60999), so nothing else is handed these ports. */
export const DEFAULT_LEG_PORTS: Readonly<PortRange> = Object.freeze({ lo: 61000, hi: 65535 });

export const RESERVED_PORTS_SYSCTL = '/proc/sys/net/ipv4/ip_local_reserved_ports';

/** Whether `port` lies in the range; never true without a range (legs then hold their socket). */
export const inRange = (r: PortRange | undefined, port: number): boolean =>
  r !== undefined && port >= r.lo && port <= r.hi;

/** "lo-hi" (or one port) as an operator writes it. */
export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*$/.exec(text);
  const lo = m ? Number(m[1]) : Number.NaN;
  const hi = m?.[2] === undefined ? lo : Number(m[2]);
  if (!(lo >= 1 && hi <= 65535 && lo <= hi)) {
    throw new BatonError(
      'CONFIG_INVALID',
      `"${text}" is not a port range; write lo-hi with 1 <= lo <= hi <= 65535 (for example 61000-65535)`,
      'bad_port_range',
    );
  }
  return { lo, hi };
}

/** The ports of an ip_local_reserved_ports value ("8080,61000-65535"), as ranges. */
export function parseReservedPorts(value: string): PortRange[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parsePortRange);
}

/**
 * The value to write so that `r` is reserved too, or undefined when it
 * already is. Other reservations are kept as they are: the list belongs to
 * the whole namespace.
 */
export function withReservedRange(current: string, r: PortRange): string | undefined {
  const have = parseReservedPorts(current);
  // Merged intervals cover r?
  let next = r.lo;
  for (const x of [...have].sort((a, b) => a.lo - b.lo)) {
    if (x.lo > next) break;
    if (x.hi >= next) next = x.hi + 1;
    if (next > r.hi) return undefined;
  }
  const own = r.lo === r.hi ? `${r.lo}` : `${r.lo}-${r.hi}`;
  return current.trim() ? `${current.trim()},${own}` : own;
}

/**
 * Adds the range to the calling thread's network namespace's reserved
 * ports (run it inside the LB's namespace). Returns true when it changed
 * the list. Nothing is removed later: a reserved port only keeps the
 * kernel from choosing it itself.
 */
export function reserveLegPorts(r: PortRange = DEFAULT_LEG_PORTS): boolean {
  try {
    const value = withReservedRange(readFileSync(RESERVED_PORTS_SYSCTL, 'utf8'), r);
    if (value === undefined) return false;
    writeFileSync(RESERVED_PORTS_SYSCTL, value);
    return true;
  } catch (e) {
    throw new BatonError(
      'HOST_SETTINGS',
      `cannot reserve ports ${r.lo}-${r.hi} for back-end legs in ${RESERVED_PORTS_SYSCTL}: ${(e as Error).message}; run as root (CAP_NET_ADMIN in the LB's namespace)`,
      'reserve_ports_failed',
      { cause: e },
    );
  }
}

/**
 * The next port of the range, starting after `cursor` and wrapping, for
 * which `taken` says no; undefined when every port is taken. Pure: the
 * caller owns the cursor (it spreads consecutive legs over the range, so a
 * port just freed is not reused at once).
 */
export function nextFreePort(r: PortRange, cursor: number, taken: (port: number) => boolean): number | undefined {
  const size = r.hi - r.lo + 1;
  const start = inRange(r, cursor) ? cursor - r.lo + 1 : 0;
  for (let i = 0; i < size; i++) {
    const port = r.lo + ((start + i) % size);
    if (!taken(port)) return port;
  }
  return undefined;
}
