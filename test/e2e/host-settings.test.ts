/**
 * The sysctls baton changes, read before, during and after `baton lb` and
 * `baton down` (the CLI, as users run them) in a testbed LB namespace, with
 * a SIGKILLed and restarted daemon in between. Beforehand accept_local is 0
 * on to-client, 1 on to-backend1 and 0 for conf.all: baton must change only
 * to-client (one it attaches to, and not already right), never conf.all, log
 * the change, keep the recorded old value across the restart (a restarted
 * daemon sees baton's own 1) and put exactly the old values back on baton
 * down. While it runs, a spliced connection whose next hops are flushed from
 * the LB's neighbour table (frames forwarded via the stack, with an LB source
 * address) keeps working: the per-interface setting is enough.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Check } from '../../control/doctor/index.js';
import { batonIn } from '../cli/baton-proc.js';
import { type DaemonProc, type DispatcherProc, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

const METRICS = '127.0.0.1:9301';
const CLIENT_SIDE = 'to-client';
const BACKEND_SIDE = 'to-backend1';
const BEFORE = { all: '0', [CLIENT_SIDE]: '0', [BACKEND_SIDE]: '1' };
const sysctlName = (iface: string) => `net.ipv4.conf.${iface}.accept_local`;

interface LogLine {
  level: number;
  sysctl?: string;
  old?: string;
  new?: string;
  msg: string;
}

describe('host settings around baton lb, a restart and baton down', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let nginx: NginxBackend | undefined;
  let lb: DaemonProc | undefined;
  let fe: DispatcherProc | undefined;
  let client: KeepAliveClient | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'baton-state-'));
  const recordDir = join(stateDir, 'sysctls');
  const ifaces = () => tb.node('lb').ifaces.map((i) => i.name);
  const startLb = () =>
    startDaemon(tb, 'lb', ifaces(), ['--log-level', 'info', '--state-dir', stateDir, '--metrics', METRICS]);
  const read = async (iface: string) =>
    (await tb.exec('lb', 'cat', [`/proc/sys/net/ipv4/conf/${iface}/accept_local`])).stdout.trim();
  const values = async () =>
    Object.fromEntries(await Promise.all(['all', ...ifaces()].map(async (i) => [i, await read(i)] as const)));
  const logLines = (d: DaemonProc): LogLine[] =>
    d.log
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  const sysctlLogs = (d: DaemonProc) => logLines(d).filter((l) => l.sysctl !== undefined);
  const records = () => (existsSync(recordDir) ? readdirSync(recordDir) : []);
  const down = async () => {
    const r = await batonIn(tb, 'lb', ['down', '--json', '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      detached: number[];
      sysctls: Array<{ name: string; action: string; current: string | null; old: string; set: string }>;
    };
  };
  const doctor = async () => {
    const r = await batonIn(tb, 'lb', [
      'doctor',
      '--json',
      '--state-dir',
      stateDir,
      ...ifaces().flatMap((i) => ['-i', i]),
    ]);
    const checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
    const of = (iface: string) => {
      const c = checks.find((x) => x.id === 'host_settings' && x.iface === iface);
      assert.ok(c, `doctor reports host_settings on ${iface}: ${JSON.stringify(checks)}`);
      return c;
    };
    return { client: of(CLIENT_SIDE), backend: of(BACKEND_SIDE) };
  };

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    assert.deepEqual(ifaces().sort(), [BACKEND_SIDE, CLIENT_SIDE].sort());
    await tb.exec('lb', 'sysctl', [
      '-qw',
      'net.ipv4.conf.all.accept_local=0',
      `${sysctlName(CLIENT_SIDE)}=0`,
      `${sysctlName(BACKEND_SIDE)}=1`,
    ]);
    nginx = await startNginx(tb, 'backend1', 8080, { 'small.txt': 'hello' });
  });

  after(async () => {
    client?.proc.kill();
    await fe?.stop();
    await lb?.stop();
    await batonIn(tb, 'lb', ['down', '--state-dir', stateDir]); // whatever the tests reached
    await nginx?.stop();
    await tb?.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('before: the values set up, nothing recorded; doctor says what baton lb will do', async () => {
    assert.deepEqual(await values(), BEFORE);
    assert.deepEqual(records(), []);
    const d = await doctor();
    assert.match(d.client.detail, /accept_local=0 \(conf\.all=0\): baton lb sets it to 1 on start/);
    assert.match(d.backend.detail, /accept_local=1 \(conf\.all=0\): as baton lb needs it \(not changed by baton/);
  });

  test('baton lb: only the attached interface that needed it changed, logged with its old value, recorded', async () => {
    lb = await startLb();
    assert.deepEqual(await values(), { all: '0', [CLIENT_SIDE]: '1', [BACKEND_SIDE]: '1' }, 'conf.all untouched');
    const logs = sysctlLogs(lb);
    assert.equal(logs.length, 1, JSON.stringify(logs));
    assert.deepEqual(
      { level: logs[0]!.level, sysctl: logs[0]!.sysctl, old: logs[0]!.old, new: logs[0]!.new },
      { level: 30, sysctl: sysctlName(CLIENT_SIDE), old: '0', new: '1' },
    );
    assert.match(logs[0]!.msg, /accept_local changed 0 -> 1 \(baton down restores it\)/);
    assert.equal(records().length, 1, records().join(','));
    const rec = JSON.parse(readFileSync(join(recordDir, records()[0]!), 'utf8')) as {
      pinDir: string;
      entries: Array<{ name: string; old: string; set: string }>;
    };
    assert.equal(rec.pinDir, '/sys/fs/bpf/baton');
    assert.deepEqual(
      rec.entries.map((e) => [e.name, e.old, e.set]),
      [[sysctlName(CLIENT_SIDE), '0', '1']],
    );
    const d = await doctor();
    assert.match(d.client.detail, /accept_local=1 \(conf\.all=0\): set by baton lb; baton down restores 0/);
    assert.match(d.backend.detail, /not changed by baton: nothing to restore/);
  });

  test('with neighbours flushed, spliced traffic is forwarded via the stack: the per-interface setting is enough', async () => {
    assert.ok(lb);
    fe = await startDispatcher(tb, {
      listen: `${VIP4}:80`,
      api: { socketPath: lb.socketPath },
      pools: { b: { backends: [`${tb.node('backend1').v4}:8080`] } },
      routes: [{ pool: 'b' }],
    });
    client = await KeepAliveClient.start(tb, VIP4);
    assert.equal((await client.get('/small.txt')).body, 'hello');
    const spliced = () => fe!.events.filter((e) => e.event === 'spliced').length;
    for (let i = 0; i < 200 && spliced() === 0; i++) await sleep(25); // the event follows the answer
    assert.equal(spliced(), 1, JSON.stringify(fe.events));
    const viaStack = async () => {
      const text = (await tb.exec('lb', 'curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`])).stdout;
      return text
        .split('\n')
        .filter((l) => l.startsWith('baton_datapath_packets_total{') && l.includes('reason="via_stack"'))
        .reduce((a, l) => a + Number(l.split(' ')[1]), 0);
    };
    const before = await viaStack();
    for (let round = 0; round < 3; round++) {
      await tb.exec('lb', 'ip', ['neigh', 'flush', 'all']);
      await sleep(600); // past the entry's next-hop cache lifetime (BATON_NEXTHOP_TTL_NS)
      for (let i = 0; i < 5; i++) assert.equal((await client.get(`/small.txt?${round}-${i}`)).body, 'hello');
    }
    assert.ok((await viaStack()) > before, 'frames went through the stack while the neighbours were resolved');
    assert.deepEqual(client.events, [], 'the client connection never broke');
  });

  test("SIGKILL and restart: the settings stay, the restarted daemon keeps the recorded old value (not baton's own 1)", async () => {
    const file = join(recordDir, records()[0]!);
    const recorded = readFileSync(file, 'utf8');
    await lb!.stop('SIGKILL');
    lb = undefined;
    assert.deepEqual(await values(), { all: '0', [CLIENT_SIDE]: '1', [BACKEND_SIDE]: '1' });
    lb = await startLb();
    assert.deepEqual(sysctlLogs(lb), [], 'nothing to change, nothing logged');
    assert.equal(readFileSync(file, 'utf8'), recorded, 'the record is reused as it was');
    assert.deepEqual(await values(), { all: '0', [CLIENT_SIDE]: '1', [BACKEND_SIDE]: '1' });
    assert.equal((await client!.get('/small.txt?after-restart')).body, 'hello');
  });

  test('baton down: the old values are back, the record gone; a second baton down changes nothing', async () => {
    client!.proc.kill();
    client = undefined;
    await fe!.stop();
    fe = undefined;
    await lb!.stop('SIGTERM');
    lb = undefined;
    assert.deepEqual(
      await values(),
      { all: '0', [CLIENT_SIDE]: '1', [BACKEND_SIDE]: '1' },
      'a stopped daemon leaves them (the datapath stays attached)',
    );
    const r = await down();
    assert.equal(r.detached.length, 2);
    assert.deepEqual(r.sysctls, [
      { name: sysctlName(CLIENT_SIDE), action: 'restore', current: '1', old: '0', set: '1' },
    ]);
    assert.deepEqual(await values(), BEFORE);
    assert.deepEqual(records(), []);
    const again = await down();
    assert.deepEqual(again.sysctls, []);
    assert.deepEqual(await values(), BEFORE);
    const d = await doctor();
    assert.match(d.client.detail, /baton lb sets it to 1 on start/);
  });
});
