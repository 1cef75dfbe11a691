/**
 * A back end's host for `baton agent`, in a testbed node (backend1 of a
 * star): `baton doctor --role agent` reports each deliberately broken
 * setting (VIP missing from lo, ARP answering for the VIP, strict
 * rp_filter, conntrack without loose pick-up, another XDP program on the
 * interface, no bpffs) as a failure with what to run, and passes once
 * repaired; `baton agent down` refuses while the agent runs, removes its XDP
 * link, pinned maps and app socket once it has stopped, and finds nothing
 * the second time.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentMapPin } from '../../control/datapath/agent-datapath.js';
import type { Check } from '../../control/doctor/index.js';
import { NODE_CLI } from '../../lab/launch/baton-cli.js';
import { VIP4 } from '../../lab/testbed/index.js';
import { skipUnlessBpf } from '../lib/env.js';
import { createTestbed, starTopology, type Testbed } from '../lib/testbed.js';
import { baton, batonIn } from './baton-proc.js';

interface Report {
  checks: Check[];
  summary: Record<Check['status'], number>;
}

const OTHER_VIP = '198.19.0.2'; // served, but not put on lo
const NODE = 'backend1';
const IFACE = 'to-lb';

const find = (r: Report, id: string, pred: (c: Check) => boolean = () => true): Check => {
  const c = r.checks.find((x) => x.id === id && pred(x));
  assert.ok(c, `check ${id} is reported: ${r.checks.map((x) => `${x.id}/${x.iface ?? ''}`).join(', ')}`);
  return c;
};

describe('a back end for baton agent: doctor --role agent and agent down', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let dir: string;
  const sysctl = (...kv: string[]) => tb.exec(NODE, 'sysctl', ['-q', '-w', ...kv]);
  const conntrack = async () =>
    (await tb.exec(NODE, 'sysctl', ['-n', 'net.netfilter.nf_conntrack_tcp_loose'], { check: false })).code === 0;
  const doctorArgs = ['doctor', '--role', 'agent', '-i', IFACE, '--vip', VIP4, '--vip', OTHER_VIP, '--json'];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-agent-host-'));
    writeFileSync(join(dir, 'peer.secret'), 'a shared secret of enough bytes\n', { mode: 0o600 });
    tb = await createTestbed(starTopology({ backends: 1 }));
    await tb.ip(NODE, ['addr', 'add', `${VIP4}/32`, 'dev', 'lo']);
  });
  after(async () => {
    await tb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('doctor --role agent: each broken setting fails with what to run', async () => {
    await sysctl(
      `net.ipv4.conf.${IFACE}.rp_filter=1`,
      'net.ipv4.conf.all.arp_ignore=0',
      'net.ipv4.conf.all.arp_announce=0',
      `net.ipv4.conf.${IFACE}.arp_ignore=0`,
    );
    const ct = await conntrack();
    if (ct) await sysctl('net.netfilter.nf_conntrack_tcp_loose=0');
    // --netns: `ip netns exec` gives a fresh /sys without bpffs. The testbed's xdp_pass is on the interface.
    const r = await baton([...doctorArgs.slice(0, 1), '--netns', tb.ns(NODE), ...doctorArgs.slice(1)]);
    assert.equal(r.code, 1, `exit 1 when a check fails; stderr: ${r.stderr}`);
    const rep = JSON.parse(r.stdout) as Report;
    const failed = (id: string, fix: RegExp, pred?: (c: Check) => boolean): void => {
      const c = find(rep, id, pred);
      assert.equal(c.status, 'fail', `${id}: ${c.detail}`);
      assert.match(c.fix ?? '', fix, id);
    };
    failed('bpffs', /mount -t bpf bpf \/sys\/fs\/bpf/);
    failed('vip', new RegExp(`ip addr add ${OTHER_VIP}/32 dev lo`), (c) => c.detail.includes(OTHER_VIP));
    assert.equal(find(rep, 'vip', (c) => c.detail.startsWith(`${VIP4} `)).status, 'ok');
    failed('arp', /arp_ignore=1 net\.ipv4\.conf\.all\.arp_announce=2/);
    failed('rp_filter', /rp_filter=2 .*2 = loose/);
    failed('xdp', new RegExp(`ip link set dev ${IFACE} xdp off`));
    assert.match(find(rep, 'xdp').detail, /xdp_pass/);
    if (ct) failed('conntrack', /nf_conntrack_tcp_loose=1/);
    for (const id of ['kernel', 'btf', 'privileges', 'libbpf', 'objects', 'tcp_repair', 'iface'])
      assert.equal(find(rep, id).status, 'ok', `${id}: ${find(rep, id).detail}`);
    assert.match(find(rep, 'objects').detail, /xdp_agent\.o/);

    const text = await baton(['doctor', '--netns', tb.ns(NODE), '--role', 'agent', '-i', IFACE, '--vip', VIP4]);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^FAIL {2}rp_filter\s+to-lb: rp_filter strict/m);
    assert.match(text.stdout, /fix the failures before starting `baton agent`/);
  });

  test('doctor --role agent passes once repaired (bpffs mounted, the XDP program attaches)', async () => {
    await sysctl(
      `net.ipv4.conf.${IFACE}.rp_filter=2`,
      'net.ipv4.conf.all.arp_ignore=1',
      'net.ipv4.conf.all.arp_announce=2',
    );
    if (await conntrack())
      await sysctl('net.netfilter.nf_conntrack_tcp_loose=1', 'net.netfilter.nf_conntrack_tcp_be_liberal=1');
    await tb.ip(NODE, ['link', 'set', 'dev', IFACE, 'xdp', 'off']);
    // The agent's --app entries name the VIPs too: OTHER_VIP is found there, and fails until it is on lo.
    await tb.ip(NODE, ['addr', 'add', `${OTHER_VIP}/32`, 'dev', 'lo']);
    const r = await batonIn(tb, NODE, ['doctor', '--role', 'agent', '-i', IFACE, '--json'], {
      BATON_AGENT_APPS: `${VIP4}:80=1000,${OTHER_VIP}:80=1000`,
    });
    const rep = JSON.parse(r.stdout) as Report;
    assert.equal(rep.summary.fail, 0, JSON.stringify(rep.checks.filter((c) => c.status !== 'ok')));
    assert.equal(r.code, 0);
    assert.equal(rep.checks.filter((c) => c.id === 'vip' && c.status === 'ok').length, 2);
    assert.match(find(rep, 'xdp').detail, /baton_agent_xdp attached in native mode and detached again/);
    const link = await tb.ip(NODE, ['-d', 'link', 'show', 'dev', IFACE]);
    assert.doesNotMatch(link.stdout, /prog\/xdp/, 'the probe left nothing attached');
  });

  describe('baton agent down', () => {
    let agent: ChildProcess;
    const pins = (): string => join(tb.bpffsPath(NODE), 'baton-agent');
    const socketDir = (): string => join(dir, 'run');
    const log: string[] = [];

    const startAgent = async (): Promise<ChildProcess> => {
      log.length = 0;
      const proc = tb.spawn(
        NODE,
        NODE_CLI[0] as string,
        [
          ...NODE_CLI.slice(1),
          'agent',
          '--listen',
          '127.0.0.1:7400',
          '--peer-secret-file',
          join(dir, 'peer.secret'),
          '--app-socket',
          join(socketDir(), 'agent.sock'),
          '--interface',
          IFACE,
        ],
        { bpffs: true },
      );
      proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
      proc.stdout?.resume();
      const deadline = Date.now() + 20_000;
      while (!log.join('').includes('agent_started')) {
        if (Date.now() > deadline || proc.exitCode !== null) assert.fail(`agent did not start: ${log.join('')}`);
        await sleep(50);
      }
      return proc;
    };
    before(async () => {
      agent = await startAgent();
    });
    after(() => {
      if (agent.exitCode === null) agent.kill('SIGKILL');
    });

    const down = (...extra: string[]) =>
      batonIn(tb, NODE, ['agent', 'down', '--app-socket', join(socketDir(), 'agent.sock'), ...extra]);

    test('refuses while the agent runs, and removes nothing', async () => {
      const r = await down();
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /a baton agent is running here .*stop it first \(SIGTERM/);
      assert.match(r.stderr, /code AGENT_RUNNING/);
      assert.ok(readdirSync(pins()).some((n) => n.startsWith('agent_link_xdp_')));
      // Doctor sees the agent's own program on the interface as fine.
      const doc = JSON.parse((await batonIn(tb, NODE, ['doctor', '--role', 'agent', '-i', IFACE, '--json'])).stdout);
      assert.match(find(doc as Report, 'xdp').detail, /baton_agent_xdp attached \(the agent's pinned link\)/);
    });

    test('after SIGTERM: detaches the link, unpins the maps, removes the socket and its directory; again: nothing', async () => {
      agent.kill('SIGTERM');
      const [code] = (await once(agent, 'exit')) as [number | null];
      assert.equal(code, 0, log.join(''));
      // SIGTERM keeps them on purpose (migrated connections keep their restore).
      assert.ok(readdirSync(pins()).length >= 3, readdirSync(pins()).join(' '));
      assert.match((await tb.ip(NODE, ['-d', 'link', 'show', 'dev', IFACE])).stdout, /prog\/xdp/);
      const ifindex = tb.node(NODE).ifaces.find((i) => i.name === IFACE)?.ifindex;

      const r = await down('--json');
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { detached: number[]; unpinned: string[]; removed: string[] };
      assert.deepEqual(out.detached, [ifindex]);
      assert.deepEqual(
        out.unpinned.sort(),
        ['baton_counters', 'baton_fids'].map((m) => basename(agentMapPin('/', m))),
      );
      // A cleanly stopped agent unlinked its socket itself; its directory is left for down.
      assert.ok(out.removed.includes(socketDir()), out.removed.join(' '));
      assert.equal(existsSync(pins()), false, 'the pin directory is gone');
      assert.equal(existsSync(socketDir()), false, 'the socket directory is gone');
      assert.doesNotMatch((await tb.ip(NODE, ['-d', 'link', 'show', 'dev', IFACE])).stdout, /prog\/xdp/);

      const again = await down();
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /^nothing to remove: no agent pins under \/sys\/fs\/bpf\/baton-agent/);
    });

    test('after SIGKILL the stale app socket is removed too', async () => {
      agent = await startAgent();
      agent.kill('SIGKILL');
      await once(agent, 'exit');
      const sock = join(socketDir(), 'agent.sock');
      assert.ok(existsSync(sock), 'a killed agent leaves its socket');
      const r = await down('--json');
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { detached: number[]; removed: string[] };
      assert.equal(out.detached.length, 1);
      assert.ok(out.removed.includes(sock) && out.removed.includes(socketDir()), out.removed.join(' '));
      assert.equal(existsSync(socketDir()), false);
    });
  });
});
