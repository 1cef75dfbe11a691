/**
 * Client option profiles (issue 13): the pure parts of
 * control/dispatcher/profile.ts and control/datapath/profile-mark.ts, and
 * the mark constants against abi.h (compiled, as the layout test does).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import {
  PROFILE_F_NO_SACK,
  PROFILE_F_NO_TS,
  PROFILE_F_NO_WSCALE,
  PROFILE_MARK_MASK,
  PROFILE_MARK_TAG,
  PROFILE_MSS_MAX,
  PROFILE_MSS_SHIFT,
} from '../../control/datapath/abi.js';
import { markMss, profileMark } from '../../control/datapath/profile-mark.js';
import { clientProfileText, refusalReason } from '../../control/datapath/splice-plan.js';
import {
  type ClientProfile,
  describeProfile,
  legKey,
  legOptions,
  profileFromTcpInfo,
} from '../../control/dispatcher/profile.js';
import { TCP_INFO_LAYOUT } from '../../control/tcp/kernel.js';
import { leg1, leg2 } from '../lib/legs.js';

const root = resolve(import.meta.dirname, '../..');

const linux: ClientProfile = { timestamps: true, sack: true, wscale: true, ecn: false, mss: 1460 };
const windows: ClientProfile = { timestamps: false, sack: true, wscale: true, ecn: false, mss: 1460 };

test('mark constants equal abi.h (BATON_PROFILE_*)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-profile-'));
  try {
    writeFileSync(
      join(dir, 'p.c'),
      `#include <stdio.h>
#include <baton/abi.h>
int main(void) { printf("[%u,%u,%u,%u,%u,%u,%u]\\n", BATON_PROFILE_MARK_TAG, BATON_PROFILE_MARK_MASK,
  BATON_PROFILE_F_NO_TS, BATON_PROFILE_F_NO_SACK, BATON_PROFILE_F_NO_WSCALE, BATON_PROFILE_MSS_SHIFT, BATON_PROFILE_MSS_MAX); return 0; }
`,
    );
    execFileSync('cc', ['-Wall', '-Werror', '-I', join(root, 'bpf/include'), '-o', join(dir, 'p'), join(dir, 'p.c')]);
    const c = JSON.parse(execFileSync(join(dir, 'p'), { encoding: 'utf8' })) as number[];
    assert.deepEqual(c, [
      PROFILE_MARK_TAG,
      PROFILE_MARK_MASK >>> 0,
      PROFILE_F_NO_TS,
      PROFILE_F_NO_SACK,
      PROFILE_F_NO_WSCALE,
      PROFILE_MSS_SHIFT,
      PROFILE_MSS_MAX,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('profileMark / markMss round trip; no edit is no mark; out-of-range MSS refused', () => {
  assert.equal(profileMark(0), undefined);
  assert.equal(profileMark(PROFILE_F_NO_TS), 0x0ba70001);
  const m = profileMark(PROFILE_F_NO_TS | PROFILE_F_NO_SACK, 536);
  assert.equal(m, (0x0ba70000 | (536 << 3) | 3) >>> 0);
  assert.equal(markMss(m as number), 536);
  assert.equal(markMss(profileMark(PROFILE_F_NO_TS) as number), undefined, 'no MSS in the mark');
  assert.equal(markMss((0x00010000 | (536 << 3)) >>> 0), undefined, "another program's mark");
  assert.equal(markMss(0), undefined);
  assert.throws(() => profileMark(0, 0), RangeError);
  assert.throws(() => profileMark(0, PROFILE_MSS_MAX + 1), RangeError);
});

test('profileFromTcpInfo: options bits, MSS = snd_mss + the 12 bytes timestamps take', () => {
  const info = Buffer.alloc(TCP_INFO_LAYOUT.size);
  info.writeUInt8(1 | 2 | 4 | 8, TCP_INFO_LAYOUT.fields.tcpi_options);
  info.writeUInt32LE(1448, TCP_INFO_LAYOUT.fields.tcpi_snd_mss);
  assert.deepEqual(profileFromTcpInfo(info), { timestamps: true, sack: true, wscale: true, ecn: true, mss: 1460 });
  info.writeUInt8(0, TCP_INFO_LAYOUT.fields.tcpi_options);
  info.writeUInt32LE(536, TCP_INFO_LAYOUT.fields.tcpi_snd_mss);
  assert.deepEqual(profileFromTcpInfo(info), { timestamps: false, sack: false, wscale: false, ecn: false, mss: 536 });
});

test('legOptions: Linux defaults take the default pool; each missing option and a smaller MSS get a mark', () => {
  assert.deepEqual(legOptions(linux, 1460), {});
  assert.equal(legKey(legOptions(linux, 1460)), '');
  assert.equal(legKey(legOptions(windows, 1460)), 'no-ts');
  assert.equal(legKey(legOptions({ ...linux, sack: false }, 1460)), 'no-sack');
  assert.equal(legKey(legOptions({ ...windows, sack: false, mss: 536 }, 1460)), 'no-ts,no-sack,mss-536');
  // A client MSS at or above what the LB advertises needs nothing; below it, the MSS goes in the mark.
  assert.deepEqual(legOptions({ ...linux, mss: 1460 }, 1448), {});
  assert.equal(legKey(legOptions({ ...linux, mss: 1220 }, 1448)), 'mss-1220');
  // Before the LB's advertised MSS is known the client's is always carried (safe: never larger).
  assert.equal(legKey(legOptions(linux)), 'mss-1460');
  // ECN and window scaling never need a leg of their own.
  assert.equal(legKey(legOptions({ ...linux, ecn: true, wscale: false }, 1460)), '');
});

test('profiles are named the same way in events and refusals', () => {
  assert.equal(
    describeProfile({ ...windows, ecn: true, mss: 536 }),
    'timestamps off, SACK on, window scaling on, ECN on, MSS 536',
  );
  assert.match(clientProfileText(leg1({ timestamps: false })), /client profile: timestamps off, SACK on/);
});

test('refusals that remain name the client profile and what makes it splice', () => {
  const ts = refusalReason(leg1({ timestamps: false, tsRecent: undefined }), leg2());
  assert.equal(ts?.reason, 'options_mismatch');
  assert.match(ts?.message ?? '', /client profile: timestamps off/);
  assert.match(ts?.message ?? '', /SO_MARK 0xba70001 \(BATON_PROFILE_F_NO_TS\)/);
  const sack = refusalReason(leg1({ sackPermitted: false }), leg2({ sackPermitted: true }));
  assert.match(sack?.message ?? '', /client profile: .*SACK off.*BATON_PROFILE_F_NO_SACK/);
  const mss = refusalReason(leg1({ mssClamp: 536 }), leg2({ advMss: 1460 }));
  assert.equal(mss?.reason, 'mss_too_large');
  assert.match(mss?.message ?? '', /client profile: .*MSS 536; baton's dispatcher does/);
});
