/**
 * The daemon dies and comes back; spliced connections never notice. In a
 * star testbed: `baton lb` (the CLI, as users run it) in the LB namespace
 * with its maps and links pinned on the node's bpffs, the dispatcher front
 * end splicing through the REST API, nginx behind, curl in front. A 64 MiB
 * download is spliced, the daemon is SIGKILLed mid-download (bytes keep
 * flowing: the pinned XDP link and maps outlive it), started again (the
 * pinned link is reused, the connection adopted and listed as recovered),
 * and the download completes byte-exact. `baton down` then removes it all.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { createClient } from '../../control/sdk/client.js';
import { type DaemonProc, type DispatcherProc, NODE_CLI, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

const BIG = 64 * 1024 * 1024;
/** Slow enough that the daemon's death and restart (a few seconds) fall inside the download. */
const RATE = '8M';
const METRICS = '127.0.0.1:9300';

describe('daemon killed and restarted during a spliced download', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let nginx: NginxBackend;
  let lb: DaemonProc | undefined;
  let fe: DispatcherProc;
  const out = join(tmpdir(), `baton-restart-${process.pid}`);
  const ifaces = () => tb.node('lb').ifaces.map((i) => i.name);
  const startLb = () => startDaemon(tb, 'lb', ifaces(), ['--metrics', METRICS]);
  const scrape = async () =>
    (await tb.exec('lb', 'curl', ['-sS', '--max-time', '5', `http://${METRICS}/metrics`])).stdout;
  const sample = (text: string, key: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${key} `))
        ?.split(' ')[1] ?? NaN,
    );
  const xdpProgs = async () =>
    (await tb.exec('lb', 'ip', ['-d', 'link', 'show'])).stdout.match(/prog\/xdp id \d+ name \S+/g) ?? [];

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': BIG });
    lb = await startLb();
    fe = await startDispatcher(tb, {
      listen: `${VIP4}:80`,
      api: { socketPath: lb.socketPath },
      pools: { b: { backends: [`${tb.node('backend1').v4}:8080`] } },
      routes: [{ pool: 'b' }],
    });
  });

  after(async () => {
    await fe?.stop();
    await lb?.stop();
    // Whatever the test reached, nothing stays attached or pinned.
    await tb?.exec('lb', NODE_CLI[0]!, [...NODE_CLI.slice(1), 'down'], {
      bpffs: true,
      check: false,
      env: { ...process.env },
    });
    await nginx?.stop();
    await tb?.destroy();
    rmSync(out, { force: true });
  });

  test('SIGKILL mid-download: bytes keep flowing, the restarted daemon adopts the connection, SHA-256 matches', {
    timeout: 120_000,
  }, async () => {
    const curl = tb.spawn(
      'client',
      'curl',
      [
        '-sS',
        '--max-time',
        '90',
        '--limit-rate',
        RATE,
        '-o',
        out,
        '-w',
        '%{http_code} %{size_download}',
        `http://${VIP4}/big.bin`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let curlOut = '';
    curl.stdout?.on('data', (d: Buffer) => (curlOut += d.toString()));
    curl.stderr?.on('data', (d: Buffer) => (curlOut += d.toString()));
    const curlDone = new Promise<number | null>((r) => curl.once('exit', (code) => r(code)));

    // The dispatcher splices the connection after reading its request.
    let spliced: Extract<DispatchEvent, { event: 'spliced' }> | undefined;
    for (let i = 0; i < 200 && !spliced; i++) {
      spliced = fe.events.find((e): e is Extract<DispatchEvent, { event: 'spliced' }> => e.event === 'spliced');
      if (!spliced) await sleep(25);
    }
    assert.ok(spliced, `the download was spliced: ${JSON.stringify(fe.events)}`);
    assert.equal(fe.events.filter((e) => e.event === 'relayed').length, 0, 'not relayed in userspace');
    const id = spliced.id;

    const api1 = createClient({ socketPath: lb!.socketPath, timeoutMs: 5000 });
    try {
      const s = await api1.getSplice(id);
      assert.equal(s.state, 'forwarding');
      assert.equal(s.recovered, false);
    } finally {
      api1.close();
    }
    await sleep(1000);
    const before = existsSync(out) ? statSync(out).size : 0;
    assert.ok(before > 0 && before < BIG, `mid-download when the daemon dies (${before} bytes)`);

    // SIGKILL: no shutdown code runs at all.
    const progsBefore = await xdpProgs();
    await lb!.stop('SIGKILL');
    lb = undefined;
    const atKill = statSync(out).size;
    let whileDead = atKill;
    for (let i = 0; i < 40 && whileDead === atKill; i++) {
      await sleep(100); // bursty under curl's rate limit: poll
      whileDead = statSync(out).size;
    }
    assert.ok(whileDead > atKill, `bytes flow while no daemon runs (${atKill} -> ${whileDead})`);
    assert.deepEqual(await xdpProgs(), progsBefore, 'the XDP program stays attached');

    // Restart: the pinned links are reused (not attached again), the connection adopted.
    lb = await startLb();
    const api2 = createClient({ socketPath: lb.socketPath, timeoutMs: 5000 });
    try {
      assert.deepEqual(await api2.ready(), { ready: true });
      const list = await api2.listSplices();
      const s = list.items.find((x) => x.id === id);
      assert.ok(s, `GET /v1/splices lists connection ${id} after the restart: ${JSON.stringify(list)}`);
      assert.equal(s.recovered, true);
      assert.equal(s.state, 'forwarding');
      assert.equal(s.client.split(':')[0], tb.node('client').v4);
      assert.equal(s.vip, `${VIP4}:80`);
      assert.equal(s.handoffs.at(-1)?.backend, `${tb.node('backend1').v4}:8080`);
      assert.equal(curl.exitCode, null, 'the download was still running when the new daemon answered');
      // The new daemon sees the traffic through the adopted entries (curl's rate limit makes it bursty: poll).
      const p0 = (await api2.getSplice(id)).traffic.toClient.packets;
      let p1 = p0;
      for (let i = 0; i < 50 && p1 === p0; i++) {
        await sleep(100);
        p1 = (await api2.getSplice(id)).traffic.toClient.packets;
      }
      assert.ok(p1 > p0, `traffic of the adopted connection moves (${p0} -> ${p1})`);
    } finally {
      api2.close();
    }
    const xdp = await xdpProgs();
    assert.equal(xdp.length, ifaces().length, `one XDP program per LB interface: ${xdp.join(' | ')}`);
    assert.ok(
      xdp.every((p) => p.endsWith('name baton_xdp')),
      xdp.join(' | '),
    );

    assert.equal(await curlDone, 0, `curl: ${curlOut}`);
    assert.equal(curlOut, `200 ${BIG}`);
    assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), nginx.sha256['/big.bin']);

    // Metrics of the new daemon: the pinned counters carried over, the adopted connection is counted.
    const m = await scrape();
    const forwarded = ['to_backend', 'to_client'].reduce(
      (a, d) =>
        a +
        sample(m, `baton_datapath_packets_total{direction="${d}",action="forwarded",reason="redirect"}`) +
        sample(m, `baton_datapath_packets_total{direction="${d}",action="forwarded",reason="tx"}`),
      0,
    );
    assert.ok(forwarded > 10_000, `forwarded packets counted across the restart (${forwarded})`);
    const known = ['blocked', 'forwarding', 'held', 'closing', 'closed'].reduce(
      (a, st) => a + sample(m, `baton_connections{state="${st}"}`),
      0,
    );
    assert.ok(known >= 1, `the adopted connection is counted (${known})`);
  });

  test('SIGTERM keeps the datapath attached; baton down detaches and unpins everything, and a running daemon says so', async () => {
    assert.ok(lb, 'a daemon runs');
    await lb.stop('SIGTERM');
    assert.equal((await xdpProgs()).length, ifaces().length, 'still attached after a graceful stop');
    lb = await startLb(); // reuses the links again
    const down = await tb.exec('lb', NODE_CLI[0]!, [...NODE_CLI.slice(1), 'down', '--json'], {
      bpffs: true,
      env: { ...process.env },
    });
    const r = JSON.parse(down.stdout) as { detached: number[]; unpinned: string[] };
    assert.deepEqual(
      r.detached.sort(),
      tb
        .node('lb')
        .ifaces.map((i) => i.ifindex)
        .sort(),
    );
    assert.ok(
      r.unpinned.some((n) => n.startsWith('baton_flows_v')),
      r.unpinned.join(','),
    );
    assert.deepEqual(await xdpProgs(), [], 'no XDP program left');
    const api = createClient({ socketPath: lb.socketPath, timeoutMs: 5000 });
    try {
      const ready = await api.ready();
      assert.equal(ready.ready, false, 'the daemon no longer claims to be ready');
      assert.match(ready.detail ?? '', /baton down/);
    } finally {
      api.close();
    }
  });
});
