/** The leg range's pure parts: parsing, merging into ip_local_reserved_ports, choosing the next free port. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_LEG_PORTS,
  inRange,
  nextFreePort,
  parsePortRange,
  parseReservedPorts,
  withReservedRange,
} from '../../control/splice/leg-ports.js';

describe('leg ports', () => {
  test('the default range lies above the kernel default ephemeral range (32768-60999)', () => {
    assert.ok(DEFAULT_LEG_PORTS.lo > 60999 && DEFAULT_LEG_PORTS.hi <= 65535);
    assert.ok(inRange(DEFAULT_LEG_PORTS, 61000) && inRange(DEFAULT_LEG_PORTS, 65535));
    assert.equal(inRange(DEFAULT_LEG_PORTS, 60999), false);
    assert.equal(inRange(undefined, 61000), false, 'no range: every leg holds its socket');
  });

  test('ranges parse; bad ones are refused with what to write', () => {
    assert.deepEqual(parsePortRange('61000-65535'), { lo: 61000, hi: 65535 });
    assert.deepEqual(parsePortRange(' 8080 '), { lo: 8080, hi: 8080 });
    for (const bad of ['', '0-10', '10-5', '1-70000', 'a-b', '1,2']) {
      assert.throws(() => parsePortRange(bad), /not a port range; write lo-hi/, bad);
    }
    assert.deepEqual(parseReservedPorts('8080,61000-65535\n'), [
      { lo: 8080, hi: 8080 },
      { lo: 61000, hi: 65535 },
    ]);
    assert.deepEqual(parseReservedPorts('\n'), []);
  });

  test('the range is appended to the namespace list, others kept; nothing written when already covered', () => {
    const r = { lo: 61000, hi: 65535 };
    assert.equal(withReservedRange('\n', r), '61000-65535');
    assert.equal(withReservedRange('8080\n', r), '8080,61000-65535');
    assert.equal(withReservedRange('61000-65535\n', r), undefined);
    assert.equal(withReservedRange('60000-62000,62001-65535', r), undefined, 'covered by adjacent ranges');
    assert.equal(withReservedRange('60000-62000,62002-65535', r), '60000-62000,62002-65535,61000-65535', 'a hole');
    assert.equal(withReservedRange('61000-65534', r), '61000-65534,61000-65535', 'one port short');
  });

  test('next free port: after the cursor, wrapping, skipping taken ones; none when all are taken', () => {
    const r = { lo: 10, hi: 14 };
    assert.equal(
      nextFreePort(r, 0, () => false),
      10,
      'a cursor outside the range starts at lo',
    );
    assert.equal(
      nextFreePort(r, 10, () => false),
      11,
    );
    assert.equal(
      nextFreePort(r, 14, () => false),
      10,
      'wraps',
    );
    assert.equal(
      nextFreePort(r, 11, (p) => p === 12 || p === 13),
      14,
    );
    assert.equal(
      nextFreePort(r, 13, (p) => p !== 11),
      11,
      'wraps past taken ports',
    );
    assert.equal(
      nextFreePort(r, 12, () => true),
      undefined,
    );
  });
});
