/**
 * The testbeds on this machine, found from namespace names and owner
 * markers, and their removal: one prefix (scripts/testbed down), or every
 * stale one (a dead owner's). Teardown is synchronous so exit paths can use it.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { runSync } from './exec.js';
import { NETNS_DIR, NS_NAME_RE, PREFIX_RE, RUN_DIR } from './naming.js';
import { type OwnerMarker, ownerAlive, readMarker } from './owner-markers.js';

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

export interface TestbedListing {
  prefix: string;
  namespaces: string[];
  owner: OwnerMarker | undefined;
  state: 'live' | 'persistent' | 'stale';
}

/** Every testbed on this machine, from the namespace names and the markers. */
export function listTestbeds(): TestbedListing[] {
  // Namespaces first, markers second: a run writes its marker before it
  // creates any namespace, so a namespace seen here always has its marker
  // visible by the time we look for it.
  const byPrefix = new Map<string, string[]>();
  for (const ns of listNetns()) {
    const m = NS_NAME_RE.exec(ns);
    if (m) byPrefix.set(m[1]!, [...(byPrefix.get(m[1]!) ?? []), ns]);
  }
  let dirs: string[] = [];
  try {
    dirs = readdirSync(RUN_DIR).filter((d) => PREFIX_RE.test(d));
  } catch {
    /* no run dir yet */
  }
  for (const d of dirs) if (!byPrefix.has(d)) byPrefix.set(d, []);
  return [...byPrefix]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([prefix, namespaces]) => {
      const owner = readMarker(prefix);
      const state: TestbedListing['state'] =
        owner && ownerAlive(owner) ? 'live' : owner?.persistent && namespaces.length ? 'persistent' : 'stale';
      return { prefix, namespaces: namespaces.sort(), owner, state };
    });
}

/** Bpffs instances we mounted under /run/baton-testbed/<prefix>/, deepest first. */
export function bpffsMounts(prefix: string): string[] {
  const root = `${RUN_DIR}/${prefix}/`;
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((p) => p.startsWith(root))
      .sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

/**
 * Tears down everything of one prefix, synchronously and best effort: kills
 * every process inside its namespaces (a live process would keep a namespace,
 * and with it the veths and any XDP program, alive after `ip netns del`),
 * deletes the namespaces, unmounts its bpffs instances, removes its run dir.
 * Returns what could not be removed.
 */
export function teardownPrefixSync(prefix: string, namespaces: readonly string[]): string[] {
  for (const ns of namespaces) {
    for (const pid of (runSync(['ip', 'netns', 'pids', ns]) ?? '').split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const ns of namespaces) runSync(['ip', 'netns', 'del', ns]);
  for (const mnt of bpffsMounts(prefix)) runSync(['umount', '-l', mnt]);
  try {
    rmSync(`${RUN_DIR}/${prefix}`, { recursive: true, force: true });
  } catch {
    /* reported below if the namespaces remain */
  }
  const left = new Set(listNetns());
  return namespaces.filter((ns) => left.has(ns));
}

/**
 * Removes testbeds whose owner is dead (crashed runs). A live run's testbed
 * is never touched; persistent ones (`scripts/testbed up`) only with `all`.
 * Returns the prefixes removed.
 */
export function cleanStale(opts: { all?: boolean } = {}): string[] {
  const removed: string[] = [];
  for (const tb of listTestbeds()) {
    if (tb.state === 'live' || (tb.state === 'persistent' && !opts.all)) continue;
    teardownPrefixSync(tb.prefix, tb.namespaces);
    removed.push(tb.prefix);
  }
  return removed;
}

/** Removes one testbed by prefix (scripts/testbed down). Refuses a live run's unless force. */
export function destroyPrefix(prefix: string, opts: { force?: boolean } = {}): void {
  const tb = listTestbeds().find((t) => t.prefix === prefix);
  if (!tb) throw new Error(`no testbed with prefix ${prefix}`);
  if (tb.state === 'live' && !opts.force && tb.owner?.pid !== process.pid) {
    throw new Error(`testbed ${prefix} belongs to live process ${tb.owner?.pid}; it cleans up after itself`);
  }
  const left = teardownPrefixSync(prefix, tb.namespaces);
  if (left.length) throw new Error(`could not delete namespaces: ${left.join(' ')}`);
}
