/**
 * The second-chance buckets the control plane writes (control/owner/
 * datapath-owners.ts, secondChancePlan): every bucket names a live peer,
 * shares are equal, the order peers came in does not matter, and neighbouring buckets
 * (b, b ^ 1) name different peers whenever there are two or more, which the
 * datapath needs so a second chance is never sent back where it came from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SECOND_CHANCE_BUCKETS } from '../../control/datapath/abi-owner.js';
import { secondChancePlan } from '../../control/owner/datapath-owners.js';

describe('secondChancePlan', () => {
  test('no peer: every bucket empty', () => {
    const plan = secondChancePlan([]);
    assert.equal(plan.length, SECOND_CHANCE_BUCKETS);
    assert.ok(plan.every((a) => a === undefined));
  });

  test('one peer: every bucket names it', () => {
    assert.ok(secondChancePlan(['10.0.1.2']).every((a) => a === '10.0.1.2'));
  });

  for (const n of [2, 3, 4, 5, 7]) {
    test(`${n} peers: equal shares, and b and b ^ 1 always differ`, () => {
      const peers = Array.from({ length: n }, (_, i) => `10.0.1.${i + 1}`);
      const plan = secondChancePlan(peers);
      const shares = new Map<string, number>();
      for (const a of plan) {
        assert.ok(a !== undefined && peers.includes(a));
        shares.set(a, (shares.get(a) ?? 0) + 1);
      }
      const counts = [...shares.values()];
      assert.equal(shares.size, n);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `shares ${counts}`);
      for (let b = 0; b < SECOND_CHANCE_BUCKETS; b++) assert.notEqual(plan[b], plan[b ^ 1], `bucket ${b}`);
    });
  }

  test('the same whatever order the peers came in; duplicates ignored', () => {
    assert.deepEqual(
      secondChancePlan(['10.0.1.3', '10.0.1.1', '10.0.1.2', '10.0.1.1']),
      secondChancePlan(['10.0.1.1', '10.0.1.2', '10.0.1.3']),
    );
  });
});
