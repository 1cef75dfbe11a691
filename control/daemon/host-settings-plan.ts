/**
 * The pure half of host settings (control/daemon/host-settings.ts): which
 * sysctls the datapath needs, the record of old values and its parser, and
 * the plans that decide what to change, what to record (first writer wins)
 * and what to restore. No I/O; unit-tested in test/unit/host-settings.test.ts.
 */
import { join } from 'node:path';
import { BatonError } from '../errors.js';

/**
 * A sysctl the datapath needs on every interface it is attached to.
 *
 * accept_local: when a next hop's neighbour entry is missing (expired,
 * flushed, never resolved), the datapath cannot fill in the MACs and passes
 * the rewritten frame to the stack (forwarded/via_stack), whose forwarding
 * path resolves the neighbour and sends it. That frame's source is one of the
 * LB's own addresses (the LB's leg-2 address, or the VIP), which IPv4 drops
 * as a martian unless accept_local is on for the device the frame arrived on
 * (IN_DEV_ORCONF: conf.all OR conf.<dev>). The frame arrives on the interface
 * whose XDP program passed it, one baton is attached to, so conf.<dev> is
 * enough and conf.all stays as the operator set it. IPv6 has no such check
 * and forwards these frames as they are: nothing to set there.
 */
export const DATAPATH_SYSCTLS: ReadonlyArray<{ family: 'ipv4'; key: string; value: string; why: string }> = [
  {
    family: 'ipv4',
    key: 'accept_local',
    value: '1',
    why: 'frames the datapath hands to the stack (next hop unresolved) have an LB source address',
  },
];

/** One sysctl baton wants set: its dotted name, its procfs path and the value. */
export interface WantedSysctl {
  /** "net.ipv4.conf.eth0.accept_local" (an interface name's dots stay dots here; the path keeps them apart) */
  name: string;
  path: string;
  ifname: string;
  value: string;
}

/** The sysctls the datapath needs on these interfaces. */
export function wantedSysctls(ifnames: readonly string[]): WantedSysctl[] {
  return ifnames.flatMap((ifname) =>
    DATAPATH_SYSCTLS.map((s) => ({
      name: `net.${s.family}.conf.${ifname}.${s.key}`,
      path: join('/proc/sys/net', s.family, 'conf', ifname, s.key),
      ifname,
      value: s.value,
    })),
  );
}

/** The namespace-wide counterpart of a per-interface sysctl (conf.all), which the kernel ORs with it. */
export function allSysctl(w: Pick<WantedSysctl, 'path'>): { name: string; path: string } {
  const parts = w.path.split('/'); // ['', 'proc', 'sys', 'net', family, 'conf', ifname, key]
  parts[6] = 'all';
  return { name: parts.slice(3).join('.'), path: parts.join('/') };
}

export const RECORD_VERSION = 1;

/** What baton changed: enough to put it back. */
export interface SysctlEntry {
  name: string;
  path: string;
  ifname: string;
  /** The interface's ifindex when baton changed it: a recreated interface is another one. */
  ifindex: number;
  /** The value before baton first changed it. */
  old: string;
  /** The value baton set. */
  set: string;
  /** When baton first changed it (ISO 8601). */
  since: string;
}

export interface HostSettingsRecord {
  version: typeof RECORD_VERSION;
  /** Network namespace cookie (SO_NETNS_COOKIE): never reused while the host runs. */
  netns: string;
  pinDir: string;
  entries: SysctlEntry[];
}

/** A wanted sysctl as it is now: its value (undefined: no such sysctl) and its interface's ifindex. */
export interface ObservedSysctl {
  want: WantedSysctl;
  current: string | undefined;
  ifindex: number | undefined;
}

export interface SysctlWrite {
  name: string;
  path: string;
  from: string;
  to: string;
}

export interface ApplyPlan {
  record: HostSettingsRecord;
  /** True when the record must be (re)written before the writes. */
  recordChanged: boolean;
  writes: SysctlWrite[];
}

/**
 * What to write and what to record for the wanted sysctls, given the record
 * an earlier daemon left (if any). First writer wins: an entry of the same
 * interface (same ifindex) keeps its old value whatever the current one is;
 * a sysctl already at the wanted value with no entry is not baton's change
 * and is neither written nor recorded. Entries of interfaces not wanted this
 * time stay (they are restored on baton down). Throws for a sysctl that does
 * not exist (no such interface, or IPv4 off on it).
 */
export function planApply(
  prior: HostSettingsRecord | undefined,
  observed: readonly ObservedSysctl[],
  ctx: { netns: string; pinDir: string; now: string },
): ApplyPlan {
  const entries = new Map((prior?.entries ?? []).map((e) => [e.name, e]));
  let recordChanged = false;
  const writes: SysctlWrite[] = [];
  for (const { want, current, ifindex } of observed) {
    if (current === undefined || ifindex === undefined) {
      throw new BatonError(
        'HOST_SETTINGS',
        `${want.name} does not exist (${want.path}): is ${want.ifname} an interface of this network namespace with IPv4 enabled?`,
        'sysctl_missing',
      );
    }
    const had = entries.get(want.name);
    const same = had !== undefined && had.ifindex === ifindex;
    if (had && !same) {
      // The interface was recreated: the old entry describes one that is gone.
      entries.delete(want.name);
      recordChanged = true;
    }
    if (current === want.value) continue;
    if (!same) {
      entries.set(want.name, {
        name: want.name,
        path: want.path,
        ifname: want.ifname,
        ifindex,
        old: current,
        set: want.value,
        since: ctx.now,
      });
      recordChanged = true;
    }
    writes.push({ name: want.name, path: want.path, from: current, to: want.value });
  }
  const record: HostSettingsRecord = {
    version: RECORD_VERSION,
    netns: ctx.netns,
    pinDir: ctx.pinDir,
    entries: [...entries.values()],
  };
  return { record, recordChanged, writes };
}

export type RestoreAction =
  /** baton's value is in place: the old one is written back */
  | 'restore'
  /** already at the old value */
  | 'unchanged'
  /** someone changed it after baton: left as it is */
  | 'kept'
  /** the interface is gone */
  | 'gone'
  /** the interface was recreated (another ifindex): its value is not baton's */
  | 'replaced';

export interface RestoreStep {
  entry: SysctlEntry;
  current: string | undefined;
  action: RestoreAction;
}

/** What `baton down` does with each recorded entry, given the values and ifindexes now. */
export function planRestore(
  record: HostSettingsRecord,
  now: (e: SysctlEntry) => { current: string | undefined; ifindex: number | undefined },
): RestoreStep[] {
  return record.entries.map((entry) => {
    const { current, ifindex } = now(entry);
    let action: RestoreAction;
    if (current === undefined || ifindex === undefined) action = 'gone';
    else if (ifindex !== entry.ifindex) action = 'replaced';
    else if (current === entry.old) action = 'unchanged';
    else if (current === entry.set) action = 'restore';
    else action = 'kept';
    return { entry, current, action };
  });
}

/** A record read back from JSON, checked field by field (it is a file anyone with root can edit). */
export function parseRecord(text: string, where: string): HostSettingsRecord {
  const bad = (why: string) =>
    new BatonError(
      'HOST_SETTINGS',
      `${where} is not a usable baton host-settings record (${why}): restore the sysctls it lists by hand (sysctl -w) and remove it`,
      'bad_record',
    );
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const o = v as Partial<HostSettingsRecord>;
  if (!o || typeof o !== 'object' || o.version !== RECORD_VERSION) throw bad(`expected version ${RECORD_VERSION}`);
  if (typeof o.netns !== 'string' || typeof o.pinDir !== 'string' || !Array.isArray(o.entries))
    throw bad('netns, pinDir or entries missing');
  for (const e of o.entries as unknown[]) {
    const x = e as Partial<SysctlEntry> | null;
    const { name, path, ifname, old, set, since, ifindex } = x ?? {};
    if (![name, path, ifname, old, set, since].every((s) => typeof s === 'string') || !Number.isInteger(ifindex))
      throw bad(`entry ${JSON.stringify(e)}`);
    // Only what baton itself would have recorded: a sysctl it sets, on a plain interface name.
    const plain = typeof ifname === 'string' && !/[/\0]|^\.\.?$/.test(ifname);
    if (!plain || !wantedSysctls([ifname]).some((w) => w.name === name && w.path === path))
      throw bad(`entry ${name} (${path}) is not a sysctl baton sets`);
  }
  return o as HostSettingsRecord;
}
