/**
 * The pure parts of control/daemon/host-settings.ts: which sysctls, what a
 * (re)started daemon writes and records (first writer wins), what baton down
 * restores, and which records are accepted.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  allSysctl,
  type HostSettingsRecord,
  type ObservedSysctl,
  parseRecord,
  planApply,
  planRestore,
  RECORD_VERSION,
  type SysctlEntry,
  wantedSysctls,
} from '../../control/daemon/host-settings-plan.js';
import { BatonError } from '../../control/errors.js';

const ctx = { netns: '4242', pinDir: '/sys/fs/bpf/baton', now: '2026-12-02T07:00:00.000Z' };
const A = 'net.ipv4.conf.eth0.accept_local';
const B = 'net.ipv4.conf.eth1.accept_local';

function observed(
  values: Record<string, [current: string | undefined, ifindex: number | undefined]>,
): ObservedSysctl[] {
  const wants = wantedSysctls(Object.keys(values));
  return wants.map((want) => ({ want, current: values[want.ifname]![0], ifindex: values[want.ifname]![1] }));
}

function entry(name: string, over: Partial<SysctlEntry> = {}): SysctlEntry {
  const ifname = name.split('.')[3]!;
  return {
    name,
    path: `/proc/sys/net/ipv4/conf/${ifname}/accept_local`,
    ifname,
    ifindex: 2,
    old: '0',
    set: '1',
    since: '2026-12-01T00:00:00.000Z',
    ...over,
  };
}

const record = (...entries: SysctlEntry[]): HostSettingsRecord => ({
  version: RECORD_VERSION,
  netns: ctx.netns,
  pinDir: ctx.pinDir,
  entries,
});

describe('host settings: which sysctls', () => {
  test('accept_local on each attached interface, never conf.all', () => {
    const w = wantedSysctls(['eth0', 'eth1']);
    assert.deepEqual(
      w.map((x) => [x.name, x.path, x.value]),
      [
        [A, '/proc/sys/net/ipv4/conf/eth0/accept_local', '1'],
        [B, '/proc/sys/net/ipv4/conf/eth1/accept_local', '1'],
      ],
    );
    assert.ok(w.every((x) => !x.path.includes('/all/')));
  });

  test('a dotted interface name stays one path segment (sysctl(8) would write it eth0/100)', () => {
    const [w] = wantedSysctls(['eth0.100']);
    assert.equal(w!.path, '/proc/sys/net/ipv4/conf/eth0.100/accept_local');
    assert.deepEqual(allSysctl(w!), {
      name: 'net.ipv4.conf.all.accept_local',
      path: '/proc/sys/net/ipv4/conf/all/accept_local',
    });
  });
});

describe('host settings: planApply', () => {
  test('first start: the value to change is recorded with its old value, one already right is left out', () => {
    const p = planApply(undefined, observed({ eth0: ['0', 2], eth1: ['1', 3] }), ctx);
    assert.deepEqual(p.writes, [{ name: A, path: '/proc/sys/net/ipv4/conf/eth0/accept_local', from: '0', to: '1' }]);
    assert.equal(p.recordChanged, true);
    assert.deepEqual(p.record.entries, [entry(A, { ifindex: 2, since: ctx.now })]);
    assert.equal(p.record.netns, ctx.netns);
  });

  test('nothing to change: no write and no record', () => {
    const p = planApply(undefined, observed({ eth0: ['1', 2] }), ctx);
    assert.deepEqual(p.writes, []);
    assert.equal(p.recordChanged, false);
    assert.deepEqual(p.record.entries, []);
  });

  test("restart: baton's own 1 is in place; the recorded old value stays, nothing is written", () => {
    const prior = record(entry(A, { old: '0', ifindex: 2 }));
    const p = planApply(prior, observed({ eth0: ['1', 2] }), ctx);
    assert.deepEqual(p.writes, []);
    assert.equal(p.recordChanged, false);
    assert.deepEqual(p.record.entries, prior.entries);
  });

  test('first writer wins: a value reset to something else meanwhile is set again, the first old value kept', () => {
    const prior = record(entry(A, { old: '0', ifindex: 2 }));
    const p = planApply(prior, observed({ eth0: ['0', 2] }), ctx);
    assert.deepEqual(
      p.writes.map((w) => [w.from, w.to]),
      [['0', '1']],
    );
    assert.equal(p.recordChanged, false);
    assert.equal(p.record.entries[0]!.old, '0');
    assert.equal(p.record.entries[0]!.since, prior.entries[0]!.since);
  });

  test('a recreated interface (new ifindex) is another one: its own value is recorded, or the old entry dropped', () => {
    const prior = record(entry(A, { old: '2', ifindex: 2 }));
    const changed = planApply(prior, observed({ eth0: ['0', 9] }), ctx);
    assert.equal(changed.recordChanged, true);
    assert.deepEqual(changed.record.entries, [entry(A, { old: '0', ifindex: 9, since: ctx.now })]);
    const already = planApply(prior, observed({ eth0: ['1', 9] }), ctx);
    assert.equal(already.recordChanged, true);
    assert.deepEqual(already.record.entries, []);
    assert.deepEqual(already.writes, []);
  });

  test('entries of interfaces not attached this time stay for baton down', () => {
    const prior = record(entry(B, { ifindex: 3 }));
    const p = planApply(prior, observed({ eth0: ['0', 2] }), ctx);
    assert.deepEqual(p.record.entries.map((e) => e.name).sort(), [A, B]);
  });

  test('a sysctl that does not exist is an error naming it', () => {
    assert.throws(
      () => planApply(undefined, observed({ eth9: [undefined, undefined] }), ctx),
      (e: unknown) =>
        e instanceof BatonError && e.code === 'HOST_SETTINGS' && e.message.includes('net.ipv4.conf.eth9.accept_local'),
    );
  });
});

describe('host settings: planRestore', () => {
  test('each case', () => {
    const rec = record(
      entry('net.ipv4.conf.a.accept_local', { ifindex: 2 }),
      entry('net.ipv4.conf.b.accept_local', { ifindex: 3 }),
      entry('net.ipv4.conf.c.accept_local', { ifindex: 4, old: '2', set: '1' }),
      entry('net.ipv4.conf.d.accept_local', { ifindex: 5 }),
      entry('net.ipv4.conf.e.accept_local', { ifindex: 6 }),
    );
    const now: Record<string, { current: string | undefined; ifindex: number | undefined }> = {
      a: { current: '1', ifindex: 2 }, // baton's value: put the old one back
      b: { current: '0', ifindex: 3 }, // already back
      c: { current: '0', ifindex: 4 }, // someone set 0 after baton set 1 (old was 2): theirs
      d: { current: undefined, ifindex: undefined }, // interface gone
      e: { current: '1', ifindex: 60 }, // recreated: not baton's 1
    };
    const steps = planRestore(rec, (e) => now[e.ifname]!);
    assert.deepEqual(
      steps.map((s) => [s.entry.ifname, s.action, s.current]),
      [
        ['a', 'restore', '1'],
        ['b', 'unchanged', '0'],
        ['c', 'kept', '0'],
        ['d', 'gone', undefined],
        ['e', 'replaced', '1'],
      ],
    );
  });
});

describe('host settings: parseRecord', () => {
  test('round trip', () => {
    const rec = record(entry(A));
    assert.deepEqual(parseRecord(JSON.stringify(rec), '/x'), rec);
  });

  test('refuses what it cannot trust, with HOST_SETTINGS and the file named', () => {
    const bad = [
      'not json',
      JSON.stringify({ ...record(), version: 99 }),
      JSON.stringify({ version: RECORD_VERSION, entries: [] }),
      JSON.stringify(record({ ...entry(A), old: 0 as unknown as string })),
      JSON.stringify(record(entry(A, { path: '/etc/shadow' }))),
      JSON.stringify(record(entry(A, { path: '/proc/sys/net/../kernel/core_pattern' }))),
    ];
    for (const text of bad) {
      assert.throws(
        () => parseRecord(text, '/run/baton/sysctls/x.json'),
        (e: unknown) =>
          e instanceof BatonError && e.code === 'HOST_SETTINGS' && e.message.includes('/run/baton/sysctls/x.json'),
        text,
      );
    }
  });
});
