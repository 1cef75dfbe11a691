/**
 * `baton doctor` in a testbed LB namespace where the setup is deliberately
 * broken (strict rp_filter, TX checksum offload on a veth, forwarding off,
 * conntrack strict, no bpffs, a missing interface): every mistake is
 * reported as a failure with its fix; once repaired, the same checks pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Check } from '../../control/doctor/index.js';
import { skipUnlessBpf } from '../lib/env.js';
import { createTestbed, starTopology, type Testbed } from '../lib/testbed.js';
import { baton, batonIn } from './baton-proc.js';

interface Report {
  netns?: string;
  checks: Check[];
  summary: Record<Check['status'], number>;
}

const find = (r: Report, id: string, iface?: string): Check => {
  const c = r.checks.find((x) => x.id === id && x.iface === iface);
  assert.ok(
    c,
    `check ${id}${iface ? ` on ${iface}` : ''} is reported: ${r.checks.map((x) => `${x.id}/${x.iface ?? ''}`).join(', ')}`,
  );
  return c;
};

describe('baton doctor', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  const sysctl = (...kv: string[]) => tb.exec('lb', 'sysctl', ['-q', '-w', ...kv]);

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1 }));
  });
  after(async () => {
    await tb?.destroy();
  });

  test('reports each broken setting as a failure, with what to do', async () => {
    await sysctl('net.ipv4.conf.to-client.rp_filter=1', 'net.ipv4.ip_forward=0');
    await tb.exec('lb', 'ethtool', ['-K', 'to-client', 'tx', 'on']);
    const conntrack =
      (await tb.exec('lb', 'sysctl', ['-n', 'net.netfilter.nf_conntrack_tcp_loose'], { check: false })).code === 0;
    if (conntrack)
      await sysctl('net.netfilter.nf_conntrack_tcp_loose=0', 'net.netfilter.nf_conntrack_tcp_be_liberal=0');

    // --netns: the checks run through `ip netns exec`, whose fresh /sys has no bpffs.
    const r = await baton([
      'doctor',
      '--netns',
      tb.ns('lb'),
      '-i',
      'to-client',
      '-i',
      'to-backend1',
      '--interface',
      'nope0',
      '--json',
    ]);
    assert.equal(r.code, 1, `exit 1 when a check fails; stderr: ${r.stderr}`);
    const rep = JSON.parse(r.stdout) as Report;
    assert.equal(rep.netns, tb.ns('lb'));

    assert.equal(find(rep, 'bpffs').status, 'fail');
    assert.match(find(rep, 'bpffs').fix!, /mount -t bpf bpf \/sys\/fs\/bpf/);
    assert.equal(find(rep, 'rp_filter', 'to-client').status, 'fail');
    assert.match(find(rep, 'rp_filter', 'to-client').fix!, /rp_filter=0/);
    assert.equal(find(rep, 'rp_filter', 'to-backend1').status, 'ok');
    assert.equal(find(rep, 'tx_checksum', 'to-client').status, 'fail');
    assert.match(find(rep, 'tx_checksum', 'to-client').fix!, /ethtool -K to-client tx off/);
    assert.equal(find(rep, 'tx_checksum', 'to-backend1').status, 'ok');
    assert.equal(find(rep, 'ip_forward').status, 'fail');
    assert.equal(find(rep, 'iface', 'nope0').status, 'fail');
    assert.match(find(rep, 'iface', 'nope0').detail, /there are: .*to-client/);
    // The testbed's pass program is on every veth: another XDP program than baton's.
    assert.equal(find(rep, 'xdp', 'to-client').status, 'warn');
    assert.match(find(rep, 'xdp', 'to-client').detail, /xdp_pass native/);
    if (conntrack) assert.equal(find(rep, 'conntrack').status, 'fail');
    for (const id of ['kernel', 'btf', 'privileges', 'libbpf', 'objects', 'tcp_repair', 'tcp_options'])
      assert.equal(find(rep, id).status, 'ok', id);
    assert.equal(rep.summary.fail, rep.checks.filter((c) => c.status === 'fail').length);

    const text = await baton(['doctor', '--netns', tb.ns('lb'), '-i', 'to-client']);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^FAIL {2}rp_filter\s+to-client: rp_filter strict/m);
    assert.match(text.stdout, /^\s+-> ethtool -K to-client tx off/m);
    assert.match(text.stdout, /\d+ failed, \d+ warnings: fix the failures before starting `baton lb`/);
  });

  test("once repaired (and with the node's bpffs mounted), the same checks pass", async () => {
    await sysctl('net.ipv4.conf.to-client.rp_filter=0', 'net.ipv4.ip_forward=1');
    await tb.exec('lb', 'ethtool', ['-K', 'to-client', 'tx', 'off']);
    const conntrack =
      (await tb.exec('lb', 'sysctl', ['-n', 'net.netfilter.nf_conntrack_tcp_loose'], { check: false })).code === 0;
    if (conntrack)
      await sysctl('net.netfilter.nf_conntrack_tcp_loose=1', 'net.netfilter.nf_conntrack_tcp_be_liberal=1');
    const r = await batonIn(tb, 'lb', ['doctor', '-i', 'to-client', '--json']);
    const rep = JSON.parse(r.stdout) as Report;
    for (const [id, iface] of [
      ['bpffs'],
      ['rp_filter', 'to-client'],
      ['tx_checksum', 'to-client'],
      ['ip_forward'],
      ['iface', 'to-client'],
    ] as const) {
      assert.equal(find(rep, id, iface).status, 'ok', `${id} ${find(rep, id, iface).detail}`);
    }
    if (conntrack) assert.equal(find(rep, 'conntrack').status, 'ok');
    assert.equal(rep.summary.fail, 0, JSON.stringify(rep.checks.filter((c) => c.status === 'fail')));
    assert.equal(r.code, 0);
  });

  test('--netns with a namespace that does not exist says so', async () => {
    const r = await baton(['doctor', '--netns', 'bt-no-such-ns']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /could not run the checks in network namespace "bt-no-such-ns": .*ip netns list shows the names/s,
    );
  });
});
