/**
 * The host settings (sysctls) baton changes, and the only code that changes
 * them. `baton lb` sets what the datapath needs on the interfaces it
 * attaches to, never namespace-wide (conf.all), logs every change with its
 * old and new value, and first writes the old value to a record that
 * outlives the daemon: `baton down` restores from it, whether the daemon
 * exited, was killed or restarted in between. The record lives in the state
 * directory (a regular file system: bpffs holds only BPF objects), one per
 * (network namespace, pin directory), because the sysctls belong to the
 * namespace and the pins name the baton instance.
 *
 * First writer wins: an entry's old value is the one seen before baton first
 * changed it; a restarted daemon finds baton's own value in place and keeps
 * the recorded one. Restoring leaves alone what someone changed after baton
 * (the current value is neither baton's nor the old one) and interfaces that
 * were removed or recreated since (a new ifindex: their value is not baton's).
 *
 * The plans (what to change, what to record, what to restore) are pure
 * functions; the rest reads and writes procfs and the record.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { BatonError } from '../errors.js';
import { libc } from '../sys/libc.js';
import { SIOCGIFINDEX, SO_NETNS_COOKIE, SOL_SOCKET } from '../tcp/kernel.js';
import { closeFd, getOpt, openTcpSocket } from '../tcp/socket.js';

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

// ---------------------------------------------------------------- the host

export interface HostLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RecordOptions {
  /** config.ts stateDir */
  stateDir: string;
  pinDir: string;
}

/** This network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14+): unlike its inode, never reused while the host runs. */
export function netnsCookie(): string {
  const fd = openTcpSocket(4);
  try {
    return getOpt(fd, SOL_SOCKET, SO_NETNS_COOKIE, 8, 'netns_cookie').readBigUInt64LE().toString();
  } finally {
    closeFd(fd);
  }
}

/** The record of the baton instance with pins in `pinDir`, in this network namespace. */
export function recordPath(o: RecordOptions, netns = netnsCookie()): string {
  const id = createHash('sha256').update(`${netns}\0${o.pinDir}`).digest('hex').slice(0, 16);
  return join(o.stateDir, 'sysctls', `${id}.json`);
}

export function readRecord(path: string): HostSettingsRecord | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BatonError('HOST_SETTINGS', `cannot read ${path}: ${(e as Error).message}`, 'record_unreadable', {
      cause: e,
    });
  }
  return parseRecord(text, path);
}

/** Written whole or not at all: a temporary file beside it, flushed, renamed over it. */
function writeRecord(path: string, record: HostSettingsRecord): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, `${JSON.stringify(record, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BatonError(
      'HOST_SETTINGS',
      `cannot record the host settings baton changes in ${path}: ${(e as Error).message}; choose a writable --state-dir`,
      'record_unwritable',
      { cause: e },
    );
  }
}

function removeRecord(path: string): void {
  rmSync(path, { force: true });
  try {
    rmdirSync(dirname(path));
  } catch {
    /* other instances' records are there */
  }
}

export function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function writeSysctl(name: string, path: string, value: string): void {
  try {
    // One write(2) of the whole value, as sysctl(8) does.
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new BatonError(
      'HOST_SETTINGS',
      `cannot set ${name}=${value} (${path}): ${(e as Error).message}; baton needs root (CAP_NET_ADMIN) in this network namespace`,
      'sysctl_unwritable',
      { cause: e },
    );
  }
}

/**
 * The ifindex of an interface of the calling thread's network namespace, or
 * undefined. Asked through a socket (SIOCGIFINDEX), not /sys/class/net,
 * which shows the namespace sysfs was mounted in: the test beds move only a
 * thread (withNetns).
 */
function ifindexOf(ifname: string): number | undefined {
  const ifr = Buffer.alloc(40); // struct ifreq
  if (Buffer.byteLength(ifname) >= 16) return undefined; // IFNAMSIZ, with its NUL
  ifr.write(ifname, 0);
  const fd = openTcpSocket(4);
  try {
    return libc.ioctl(fd, SIOCGIFINDEX, 'void *', ifr) < 0 ? undefined : ifr.readInt32LE(16);
  } finally {
    closeFd(fd);
  }
}

function observe(ifnames: readonly string[]): ObservedSysctl[] {
  return wantedSysctls(ifnames).map((want) => ({
    want,
    current: readSysctl(want.path),
    ifindex: ifindexOf(want.ifname),
  }));
}

function writeAll(writes: readonly SysctlWrite[], log: HostLog | undefined, recorded: string | undefined): void {
  for (const w of writes) {
    writeSysctl(w.name, w.path, w.to);
    log?.info(
      { sysctl: w.name, old: w.from, new: w.to, ...(recorded ? { record: recorded } : {}) },
      `host setting ${w.name} changed ${w.from} -> ${w.to}${recorded ? ' (baton down restores it)' : ''}`,
    );
  }
}

/**
 * `baton lb`: sets what the datapath needs on `ifnames`, recording each old
 * value (before the change, so a crash in between loses nothing) in the
 * instance's record, which a restarted daemon reuses. Returns the writes made
 * (none when everything is in place already).
 */
export function applyHostSettings(ifnames: readonly string[], opts: RecordOptions & { log?: HostLog }): SysctlWrite[] {
  const netns = netnsCookie();
  const path = recordPath(opts, netns);
  const plan = planApply(readRecord(path), observe(ifnames), {
    netns,
    pinDir: opts.pinDir,
    now: new Date().toISOString(),
  });
  if (plan.recordChanged) {
    if (plan.record.entries.length) writeRecord(path, plan.record);
    else removeRecord(path);
  }
  writeAll(plan.writes, opts.log, path);
  return plan.writes;
}

/**
 * The same settings without a record, for namespaces that are deleted with
 * their user (the in-process test beds and benchmarks): nothing to restore.
 */
export function applyHostSettingsUnrecorded(ifnames: readonly string[], log?: HostLog): SysctlWrite[] {
  const { writes } = planApply(undefined, observe(ifnames), { netns: '', pinDir: '', now: '' });
  writeAll(writes, log, undefined);
  return writes;
}

export interface RestoreResult {
  /** The record used (undefined: none, nothing was changed by baton here). */
  record: string | undefined;
  steps: RestoreStep[];
}

/**
 * `baton down`: puts back every recorded old value that baton's value still
 * holds, then removes the record. Idempotent: without a record it does
 * nothing. A value that cannot be written keeps its entry (and the record)
 * and is reported after all others were tried.
 */
export function restoreHostSettings(opts: RecordOptions & { log?: HostLog }): RestoreResult {
  const path = recordPath(opts);
  const record = readRecord(path);
  if (!record) return { record: undefined, steps: [] };
  const steps = planRestore(record, (e) => ({ current: readSysctl(e.path), ifindex: ifindexOf(e.ifname) }));
  const failed: Array<{ step: RestoreStep; err: Error }> = [];
  for (const s of steps) {
    const e = s.entry;
    if (s.action === 'restore') {
      try {
        writeSysctl(e.name, e.path, e.old);
        opts.log?.info(
          { sysctl: e.name, old: e.set, new: e.old },
          `host setting ${e.name} restored ${e.set} -> ${e.old}`,
        );
      } catch (err) {
        failed.push({ step: s, err: err as Error });
      }
    } else if (s.action === 'kept') {
      opts.log?.warn(
        { sysctl: e.name, current: s.current, set: e.set, old: e.old },
        `host setting ${e.name} left at ${s.current}: changed since baton set it to ${e.set} (it was ${e.old})`,
      );
    }
  }
  if (failed.length) {
    writeRecord(path, { ...record, entries: failed.map((f) => f.step.entry) });
    throw new BatonError(
      'HOST_SETTINGS',
      `could not restore ${failed.map((f) => f.err.message).join('; ')}; the record ${path} keeps them: run baton down again once fixed`,
      'restore_failed',
    );
  }
  removeRecord(path);
  return { record: path, steps };
}

export interface HostSettingsView {
  /** Each wanted sysctl on each interface, with conf.all beside it (the kernel ORs the two). */
  current: Array<{ name: string; ifname: string; value: string | undefined; all: string | undefined; wanted: string }>;
  record: string;
  /** What baton down would restore (the record's entries), if a record exists. */
  recorded: SysctlEntry[] | undefined;
}

/** `baton doctor`: the values now, and what baton recorded and will restore. */
export function describeHostSettings(ifnames: readonly string[], opts: RecordOptions): HostSettingsView {
  const path = recordPath(opts);
  const current = wantedSysctls(ifnames).map((w) => ({
    name: w.name,
    ifname: w.ifname,
    value: readSysctl(w.path),
    all: readSysctl(allSysctl(w).path),
    wanted: w.value,
  }));
  return { current, record: path, recorded: readRecord(path)?.entries };
}
