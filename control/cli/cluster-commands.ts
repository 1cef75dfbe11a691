/**
 * The operations commands (issue 12): the cluster block of `baton status`,
 * and `baton lb drain` (POST /v1/drain; --cancel: DELETE; --wait: until the
 * LB holds nothing).
 */
import type { BatonClient } from '../sdk/client.js';
import type { ClusterStatus, DrainStatus } from '../sdk/types.js';
import { humanBytes, humanDuration, type Io, printJson } from './io.js';
import { EXIT, UsageError } from './usage.js';

const ago = (iso: string | null, now: number) =>
  iso === null ? 'never' : `${humanDuration(now - Date.parse(iso))} ago`;
const ms = (x: number | null) => (x === null ? '-' : `${x} ms`);

export function describeDrain(d: DrainStatus, now = Date.now()): string {
  if (d.state === 'serving') return 'serving (not draining)';
  if (d.state === 'drained')
    return `drained: holds no connection (draining since ${ago(d.since, now)}, drained ${ago(d.drainedAt, now)}); the host can be stopped`;
  return `draining since ${ago(d.since, now)}: new splices refused (DRAINING), ${d.connectionsLeft} connection${d.connectionsLeft === 1 ? '' : 's'} left`;
}

/** The text lines of `baton status` about the cluster and the drain. */
export function describeCluster(c: ClusterStatus, now = Date.now()): string[] {
  const lines: string[] = [];
  if (c.mode === 'alone' || !c.self) {
    lines.push(`cluster   alone (no --store): no peers, nothing forwarded in the owner header`);
  } else {
    const store = c.store
      ? `store ${c.store.kind} ${c.store.reachable ? 'reachable' : `NOT reachable (${c.store.error})`}`
      : '';
    lines.push(`cluster   ${c.self.id} at ${c.self.address} (owner port ${c.self.ownerPort}), ${store}`);
    lines.push(`peers     ${c.peers.length} live${c.peers.length ? '' : ' (none: this LB forwards to nobody)'}`);
    for (const p of c.peers) {
      const ttl = p.ttlLeftMs === null ? 'ttl unknown' : `ttl left ${humanDuration(p.ttlLeftMs)}`;
      const seen = p.lastSeenMsAgo === null ? '' : `, seen ${humanDuration(p.lastSeenMsAgo)} ago`;
      lines.push(
        `  ${p.id}  ${p.address}  ${ttl}${seen}, ${p.connections} of its connections here, forwarded ${p.forwardedPackets} packets (${humanBytes(p.forwardedBytes)})`,
      );
    }
  }
  const k = c.connections;
  lines.push(
    `owned     ${k.owned} connection${k.owned === 1 ? '' : 's'}${c.mode === 'cluster' ? ` (${k.published} in the directory)` : ''}; forwarded to peers ${k.forwarded} (owner entries; ${k.known} in the directory)`,
  );
  if (c.directory) {
    const d = c.directory;
    lines.push(
      `directory ${d.pending} change${d.pending === 1 ? '' : 's'} pending; last publish ${ago(d.lastPublishAt, now)}, last install ${ago(d.lastInstallAt, now)}; propagation last ${ms(d.lastPropagationMs)}, p50 ${ms(d.propagationP50Ms)}, p99 ${ms(d.propagationP99Ms)} (${d.samples} recent)`,
    );
  }
  lines.push(`drain     ${describeDrain(c.drain, now)}`);
  return lines;
}

export interface DrainFlags {
  cancel?: boolean;
  wait?: boolean;
  timeout?: string;
}

/** "90s", "5m", "1h", "1500ms" or a number of seconds -> ms. */
export function parseTimeout(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m)
    throw new UsageError(`--timeout must be a duration like 90s, 5m or 1h; got ${JSON.stringify(text)}`, 'lb drain');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

export async function drainCommand(
  io: Io,
  api: BatonClient,
  f: DrainFlags,
  sleep: (ms: number) => Promise<void> = (t) => new Promise((r) => setTimeout(r, t)),
): Promise<number> {
  if (f.cancel && f.wait)
    throw new UsageError('--wait waits for a drain to end; it cannot go with --cancel', 'lb drain');
  const timeoutMs = f.timeout === undefined ? undefined : parseTimeout(f.timeout);
  if (timeoutMs !== undefined && !f.wait) throw new UsageError('--timeout bounds --wait; give --wait too', 'lb drain');
  let d = f.cancel ? await api.undrain() : await api.drain();
  if (f.wait) {
    const end = Date.now() + (timeoutMs ?? Number.POSITIVE_INFINITY);
    let said = -1;
    while (d.state === 'draining') {
      if (!io.json && d.connectionsLeft !== said) {
        io.err(`waiting: ${d.connectionsLeft} connection${d.connectionsLeft === 1 ? '' : 's'} left`);
        said = d.connectionsLeft;
      }
      if (Date.now() >= end) break;
      await sleep(1000);
      d = await api.drainStatus();
    }
  }
  if (io.json) printJson(io, d);
  else if (f.cancel) io.out(`drain cancelled: ${describeDrain(d)}`);
  else {
    io.out(describeDrain(d));
    if (d.state === 'draining' && !f.wait)
      io.out(
        'Remove this LB from the router (its next hop for the VIPs) so new flows go elsewhere; `baton lb drain --wait` waits until it holds nothing.',
      );
  }
  // --wait that timed out: the drain goes on, but the caller asked to know it was done.
  return f.wait && d.state !== 'drained' ? EXIT.FAILED : EXIT.OK;
}
