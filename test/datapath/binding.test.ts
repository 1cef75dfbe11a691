/** The libbpf binding against the real kernel: objects, maps, errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BpfArgumentError, BpfError, BpfObject, testRun, XdpAction } from '../../control/bpf/index.js';
import { DATAPATH_OBJ, skipUnlessBpf } from '../lib/env.js';

describe('libbpf binding', { skip: skipUnlessBpf }, () => {
  test('a missing object file gives BpfError with ENOENT and the path', () => {
    const path = '/nonexistent/baton-missing.o';
    assert.throws(
      () => BpfObject.open(path),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.op === 'open' && e.message.includes(path),
    );
  });

  test('inserting into a full HASH map gives E2BIG; NOEXIST/EXIST are honoured', async () => {
    const obj = BpfObject.open(DATAPATH_OBJ, { maps: { baton_flows: { maxEntries: 2 } } });
    try {
      await obj.load();
      const flows = obj.map('baton_flows');
      const value = Buffer.alloc(flows.valueSize);
      const key = (i: number) => {
        const k = Buffer.alloc(flows.keySize);
        k.writeUInt32BE(i);
        return k;
      };
      flows.update(key(1), value, 'NOEXIST');
      assert.throws(
        () => flows.update(key(1), value, 'NOEXIST'),
        (e: unknown) => e instanceof BpfError && e.code === 'EEXIST',
      );
      assert.throws(
        () => flows.update(key(9), value, 'EXIST'),
        (e: unknown) => e instanceof BpfError && e.code === 'ENOENT',
      );
      flows.update(key(2), value, 'NOEXIST');
      assert.throws(
        () => flows.update(key(3), value, 'NOEXIST'),
        (e: unknown) => e instanceof BpfError && e.code === 'E2BIG' && /full/.test(e.message),
      );
      // Lookup, iterate, batch, delete.
      assert.ok(flows.lookup(key(1)));
      assert.equal(flows.lookup(key(7)), undefined);
      assert.equal([...flows.keys()].length, 2);
      assert.equal(flows.lookupBatch(1).length, 2);
      assert.equal(flows.delete(key(1)), true);
      assert.equal(flows.delete(key(1)), false);
    } finally {
      obj.close();
    }
  });

  test('a wrong-size key or value is refused before the syscall', async () => {
    const obj = BpfObject.open(DATAPATH_OBJ);
    try {
      await obj.load();
      const flows = obj.map('baton_flows');
      assert.throws(
        () => flows.update(Buffer.alloc(3), Buffer.alloc(flows.valueSize)),
        (e: unknown) => e instanceof BpfArgumentError && /40-byte keys, got 3/.test(e.message),
      );
      assert.throws(() => flows.update(Buffer.alloc(flows.keySize), Buffer.alloc(1)), BpfArgumentError);
      assert.throws(() => flows.lookup(Buffer.alloc(41)), BpfArgumentError);
      const counters = obj.map('baton_counters');
      assert.throws(
        () => counters.update(Buffer.alloc(4), Buffer.alloc(16)),
        (e: unknown) => e instanceof BpfArgumentError && /CPUs/.test(e.message),
      );
    } finally {
      obj.close();
    }
  });

  test('unknown map or program names list what exists', async () => {
    const obj = BpfObject.open(DATAPATH_OBJ);
    try {
      assert.throws(() => obj.map('nope'), /has no map "nope" \(has: .*baton_flows/);
      assert.throws(() => obj.program('nope'), /has no program "nope" \(has: baton_xdp, baton_ctl, baton_tc_profile\)/);
    } finally {
      obj.close();
    }
  });

  test('per-CPU counters are summed over CPUs after BPF_PROG_TEST_RUN', async () => {
    const obj = BpfObject.open(DATAPATH_OBJ);
    try {
      await obj.load();
      const frame = Buffer.alloc(64);
      frame.writeUInt16BE(0x0806, 12); // ARP: not IP
      const r = testRun(obj.program('baton_xdp'), { packet: frame, repeat: 50 });
      assert.equal(r.retval, XdpAction.PASS);
      const counters = obj.map('baton_counters');
      const key = Buffer.alloc(4); // BATON_R_PASS_NOT_IP = 0
      const [packets, bytes] = counters.sumU64(counters.lookup(key) as Buffer);
      assert.equal(packets, 50n);
      assert.equal(bytes, 50n * 64n);
    } finally {
      obj.close();
    }
  });

  test('load runs off the event loop', async () => {
    const obj = BpfObject.open(DATAPATH_OBJ);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await obj.load();
    } finally {
      clearInterval(timer);
      obj.close();
    }
    // The verifier takes several ms for the datapath: timers kept firing.
    assert.ok(ticks >= 1, `event loop ticked ${ticks} times during load`);
  });
});
