/** The profile-share benchmark's arithmetic and tables (bench/profile-share-results.ts), from synthetic rows. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ProfileShareResults,
  profileShareLines,
  profileShareTable,
  profileShareTotals,
} from '../../bench/profile-share-results.js';
import { reducedMatrix } from '../../lab/profiles/client-profiles.js';

/** The reduced matrix on both families; the baseline splices only profiles with timestamps and SACK on. */
function results(): ProfileShareResults {
  const rows = reducedMatrix().flatMap((profile, i) =>
    ([4, 6] as const).map((family) => ({
      family,
      profile,
      name: `p${i}`,
      legs: { outcome: 'spliced' as const, detail: i ? 'no-ts' : '', clean: true },
      baseline:
        profile.timestamps && profile.sack
          ? { outcome: 'spliced' as const, detail: '', clean: true }
          : {
              outcome: 'relayed' as const,
              detail: 'timestamps are off toward the client',
              clean: i !== 3 || family !== 6,
            },
    })),
  );
  return { matrix: 'reduced', downloadBytes: 65536, rows };
}

test('totals: spliced with and without profile legs, unclean connections counted once', () => {
  const t = profileShareTotals(results());
  assert.deepEqual(t.legs, { spliced: 8, total: 8 });
  assert.deepEqual(t.baseline, { spliced: 2, total: 8 });
  assert.equal(t.unclean, 1);
});

test('per axis value: every value of every axis gets a row with both shares', () => {
  const lines = profileShareLines(results());
  assert.match(lines[0] ?? '', /4 profiles x IPv4\/IPv6.*64 KiB.*8\/8 \(100%\).*2\/8 \(25%\); 1 connection/);
  assert.ok(lines.includes('| timestamps off | 4/4 (100%) | 0/4 (0%) |'), lines.join('\n'));
  assert.ok(lines.includes('| timestamps on | 4/4 (100%) | 2/4 (50%) |'));
  for (const v of ['wscale off', 'wscale default', 'wscale 14', 'mss 536', 'mss 1220', 'mss 1460', 'ecn on', 'ecn off'])
    assert.ok(
      lines.some((l) => l.startsWith(`| ${v} |`)),
      v,
    );
});

test('the full table names the leg profile and flags unclean connections', () => {
  const t = profileShareTable(results());
  assert.equal(t.length, 2 + 8);
  assert.ok(t.includes('| p0 | IPv4 | spliced (leg default) | spliced (leg default) |'));
  assert.ok(t.includes('| p3 | IPv6 | spliced (leg no-ts) | relayed **wrong bytes or RST** |'));
});
