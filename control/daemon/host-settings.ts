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
 * functions in host-settings-plan.ts; this module reads and writes procfs
 * and the record.
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
import { SIOCGIFINDEX } from '../tcp/kernel.js';
import { closeFd, openTcpSocket, threadNetnsCookie } from '../tcp/socket.js';

import {
  allSysctl,
  type HostSettingsRecord,
  type ObservedSysctl,
  parseRecord,
  planApply,
  planRestore,
  type RestoreStep,
  type SysctlEntry,
  type SysctlWrite,
  wantedSysctls,
} from './host-settings-plan.js';

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

/** The record of the baton instance with pins in `pinDir`, in this network namespace. */
export function recordPath(o: RecordOptions, netns = threadNetnsCookie()): string {
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
  const netns = threadNetnsCookie();
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
