/**
 * Later handoffs end to end (issue 3 (e), source document 000 claims 3-4):
 * one keep-alive client connection is spliced to back end 1, then at a
 * request boundary handed to back end 2 (and back to back end 1 on a fresh
 * leg). Every answer must come from the back end it was sent to, byte-exact;
 * the retired legs end with a FIN exchange, no RST anywhere, and the client
 * never sees its connection close. Then an abort resets both ends.
 */
import assert from 'node:assert/strict';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Datapath } from '../../control/datapath/datapath.js';
import { DEFAULT_LEG_PORTS, inRange } from '../../control/splice/leg-ports.js';
import type { SpliceRecord, Splicer } from '../../control/splice/splicer.js';
import { skipUnlessBpf } from '../lib/env.js';
import type { FrontendDriver } from '../lib/frontend-driver.js';
import { KeepAliveClient as Client } from '../lib/keepalive-client.js';
import type { NginxBackend } from '../lib/nginx.js';
import { type SpliceBed, startSpliceBed } from '../lib/splice-bed.js';
import { type Testbed, VIP4 } from '../lib/testbed.js';

const FILE = 256 * 1024;

describe('later handoffs end to end', { skip: skipUnlessBpf }, () => {
  let bed: SpliceBed;
  let tb: Testbed;
  let dp: Datapath;
  let splicer: Splicer;
  let nginx: Record<string, NginxBackend>;
  let fe: FrontendDriver;
  let client: Client;
  let rec: SpliceRecord;
  const rsts: string[] = [];
  const fins: Record<string, string[]> = { backend1: [], backend2: [] };

  before(async () => {
    bed = await startSpliceBed({ backends: 2, files: (b) => ({ 'who.txt': b, 'file.bin': FILE }) });
    ({ tb, dp, splicer, fe, nginx } = bed);
    for (const node of ['client', 'backend1', 'backend2']) {
      const cap = tb.spawn(node, 'tcpdump', ['-i', 'any', '-nn', '-l', 'tcp[13] & 5 != 0'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      readline.createInterface({ input: cap.stdout! }).on('line', (l) => {
        if (/Flags \[[^\]]*R/.test(l)) rsts.push(`${node}: ${l}`);
        else if (/Flags \[[^\]]*F/.test(l) && fins[node]) fins[node]!.push(l);
      });
    }
    await sleep(300); // tcpdump attached
    client = await Client.start(tb, VIP4);
  });

  after(async () => {
    client?.proc.kill();
    await bed?.destroy();
  });

  async function expectServedBy(backend: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const who = await client.get(`/who.txt?${backend}-${i}`);
      assert.equal(who.status, 200);
      assert.equal(who.body, backend, `request ${i} answered by ${who.body}, expected ${backend}`);
      const f = await client.get('/file.bin');
      assert.equal(f.length, FILE);
      assert.equal(f.sha256, nginx[backend]!.sha256['/file.bin'], `file from ${backend} byte-exact`);
    }
  }

  test('the connection is spliced to back end 1 and serves its requests', async () => {
    await expectServedBy('backend1', 3);
    assert.equal(fe.splices.length, 1, fe.failures.join('; '));
    rec = fe.splices[0]!;
    assert.equal(rec.legs[0]?.backend.ip, tb.node('backend1').v4);
    assert.equal(splicer.status(rec.id)?.state, 'forwarding');
  });

  test('(e) handed to back end 2 at a request boundary: its requests are served there, byte-exact', async () => {
    await splicer.handoff(rec.id, { ip: tb.node('backend2').v4, port: 8080 });
    assert.equal(rec.legs.length, 2);
    assert.equal(rec.legs[0]?.retired, true);
    // baton's own leg comes from the leg range: its entry reserves the tuple, no socket is held.
    const leg = rec.legs[1];
    assert.ok(leg && inRange(DEFAULT_LEG_PORTS, leg.local.port), `new leg's port ${leg?.local.port} from the range`);
    assert.equal(leg.heldFd, undefined, 'no socket held for the new leg');
    const held = await tb.exec('lb', 'ss', ['-tanH', `( sport = :${leg.local.port} )`]);
    assert.equal(held.stdout.trim(), '', `no socket on the new leg's port in the LB: ${held.stdout}`);
    await expectServedBy('backend2', 3);
  });

  test("(e) back end 1's leg was closed cleanly (FIN both ways, no socket left), the client saw nothing", async () => {
    await sleep(300);
    assert.ok(fins.backend1!.length >= 2, `FIN exchange seen at back end 1: ${fins.backend1!.join(' | ')}`);
    const left = await tb.exec('backend1', 'ss', ['-tanH', 'state', 'established', '( sport = :8080 )']);
    assert.equal(left.stdout.trim(), '', 'no established connection left on back end 1');
    assert.deepEqual(client.events, [], 'the client connection stayed open');
  });

  test('a third handoff back to back end 1 (a new leg) works the same way', async () => {
    await splicer.handoff(rec.id, { ip: tb.node('backend1').v4, port: 8080 });
    await expectServedBy('backend1', 2);
    await sleep(300);
    assert.ok(fins.backend2!.length >= 2, "back end 2's leg closed with FINs");
    assert.deepEqual(rsts, [], 'no RST seen by the client or either back end');
    const c = dp.readCounters();
    assert.equal(c.find((r) => r.reason === 'no_leg')?.packets, 0n);
  });

  test('a handoff to a back end that does not answer fails cleanly and the connection keeps working', async () => {
    await assert.rejects(
      splicer.handoff(rec.id, { ip: tb.node('backend2').v4, port: 9 }, { quiesceTimeoutMs: 500 }),
      (e: Error & { code?: string }) => e.code === 'BACKEND_UNREACHABLE',
    );
    assert.equal(rec.legs.length, 3);
    assert.equal(splicer.status(rec.id)?.state, 'forwarding');
    await expectServedBy('backend1', 1);
  });

  test('abort resets both ends and removes the entries', async () => {
    assert.equal(await splicer.abort(rec.id), true);
    for (let i = 0; i < 50 && client.events.length === 0; i++) await sleep(20);
    assert.deepEqual(client.events, [{ event: 'error', code: 'ECONNRESET' }]);
    assert.equal(splicer.records.has(rec.id), false);
    assert.equal(dp.table.size(), 0, 'no entry left in the table');
    const left = await tb.exec('backend1', 'ss', ['-tanH', 'state', 'established', '( sport = :8080 )']);
    assert.equal(left.stdout.trim(), '', 'back end 1 dropped its connection');
  });
});
