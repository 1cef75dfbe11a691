/**
 * The C headers are the source of truth for every struct that crosses the
 * C/TypeScript boundary. This test compiles a C program against them (and
 * against the installed libbpf.h) that prints sizeof/offsetof of each struct
 * and the reason table, and compares with the TypeScript codecs.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { LIBBPF_STRUCTS } from '../../control/bpf/libbpf-structs.js';
import {
  ABI_VERSION,
  CtlOp,
  DIRECTIONS,
  FlowKind,
  FlowState,
  LAYOUTS,
  MAX_LEGS,
  REASONS,
  TRACK_F_FIN,
  TRACK_F_RST,
  TRACK_F_SEEN,
  XLATE_F_TS,
} from '../../control/datapath/abi.js';
import { FidCtlOp, FidState } from '../../control/datapath/abi-migrate.js';
import {
  OWNER_HDR_VERSION,
  OWNER_MAX_HOPS_DEFAULT,
  OWNER_PORT_DEFAULT,
  OWNER_SPORT_BASE,
  OWNER_SPORT_MASK,
  PEERS_MAX,
  SECOND_CHANCE_BUCKETS,
} from '../../control/datapath/abi-owner.js';
import {
  PROBE_BATCH,
  PROBE_F_FOUND,
  PROBE_F_REPAIR,
  PROBE_F_SACK_OK,
  PROBE_F_TSTAMP_OK,
  PROBE_F_USEC_TS,
  PROBE_F_WSCALE_OK,
} from '../../control/datapath/abi-probe.js';
import { TCP_INFO_LAYOUT, TCP_STRUCTS } from '../../control/tcp/kernel.js';

const root = resolve(import.meta.dirname, '../..');
const haveCc = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

interface Printed {
  structs: Record<string, { size: number; fields: Record<string, number> }>;
  consts: Record<string, number>;
  reasons: Array<[string, string]>;
  directions: string[];
  ownerConsts: Record<string, number>;
}

function cProgram(): string {
  const structs: Array<[string, readonly string[], string]> = [];
  for (const [name, l] of Object.entries(LAYOUTS)) structs.push([name, Object.keys(l.fields), `struct ${name}`]);
  for (const l of LIBBPF_STRUCTS) structs.push([l.name, Object.keys(l.fields), `struct ${l.name}`]);
  for (const l of TCP_STRUCTS) structs.push([l.name, Object.keys(l.fields), `struct ${l.name}`]);
  const body = structs
    .map(([name, fields, ctype], i) => {
      const fs = fields
        .map((f, j) => `printf("%s\\"${f}\\":%zu", ${j ? '","' : '""'}, offsetof(${ctype}, ${f}));`)
        .join('\n  ');
      return `printf("%s\\"${name}\\":{\\"size\\":%zu,\\"fields\\":{", ${i ? '","' : '""'}, sizeof(${ctype}));\n  ${fs}\n  printf("}}");`;
    })
    .join('\n  ');
  return `#include <stdio.h>
#include <stddef.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <baton/abi.h>
#define DIRECTION_JSON(d, n) printf("%s\\"%s\\"", d ? "," : "", n);
#define REASON_JSON(r, a, n) printf("%s[\\"%s\\",\\"%s\\"]", r ? "," : "", a, n);
int main(void) {
  printf("{\\"structs\\":{");
  ${body}
  printf("},\\"consts\\":{\\"ABI_VERSION\\":%d,\\"MAX_LEGS\\":%d,\\"XLATE_F_TS\\":%d,\\"TRACK_F_FIN\\":%d,\\"TRACK_F_RST\\":%d,\\"TRACK_F_SEEN\\":%d,\\"STATE_BLOCK\\":%d,\\"STATE_FORWARD\\":%d,\\"STATE_HOLD\\":%d,\\"STATE_SUPERSEDED\\":%d,\\"CTL_SET_STATE\\":%d,\\"CTL_APPEND_LEG\\":%d,\\"KIND_CLIENT\\":%d,\\"KIND_BACKEND\\":%d,\\"R_MAX\\":%d,\\"PROBE_F_FOUND\\":%d,\\"PROBE_F_TSTAMP_OK\\":%d,\\"PROBE_F_USEC_TS\\":%d,\\"PROBE_F_REPAIR\\":%d,\\"PROBE_F_SACK_OK\\":%d,\\"PROBE_F_WSCALE_OK\\":%d,\\"PROBE_BATCH\\":%d,\\"KIND_MIGRATED\\":%d,\\"FID_HOLD\\":%d,\\"FID_RESTORE\\":%d,\\"FID_CTL_SET_STATE\\":%d},",
    BATON_ABI_VERSION, BATON_MAX_LEGS, BATON_XLATE_F_TS, BATON_TRACK_F_FIN, BATON_TRACK_F_RST, BATON_TRACK_F_SEEN,
    BATON_STATE_BLOCK, BATON_STATE_FORWARD, BATON_STATE_HOLD, BATON_STATE_SUPERSEDED, BATON_CTL_SET_STATE, BATON_CTL_APPEND_LEG, BATON_KIND_CLIENT, BATON_KIND_BACKEND, BATON_R_MAX,
    BATON_PROBE_F_FOUND, BATON_PROBE_F_TSTAMP_OK, BATON_PROBE_F_USEC_TS, BATON_PROBE_F_REPAIR, BATON_PROBE_F_SACK_OK, BATON_PROBE_F_WSCALE_OK, BATON_PROBE_BATCH,
    BATON_KIND_MIGRATED, BATON_FID_HOLD, BATON_FID_RESTORE, BATON_FID_CTL_SET_STATE);
  printf("\\"ownerConsts\\":{\\"KIND_OWNER\\":%d,\\"HDR_VERSION\\":%d,\\"PORT_DEFAULT\\":%d,\\"MAX_HOPS_DEFAULT\\":%d,\\"SECOND_CHANCE_BUCKETS\\":%d,\\"SPORT_BASE\\":%d,\\"SPORT_MASK\\":%d,\\"PEERS_MAX\\":%d},",
    BATON_KIND_OWNER, BATON_OWNER_HDR_VERSION, BATON_OWNER_PORT_DEFAULT, BATON_OWNER_MAX_HOPS_DEFAULT,
    BATON_SECOND_CHANCE_BUCKETS, BATON_OWNER_SPORT_BASE, BATON_OWNER_SPORT_MASK, BATON_PEERS_MAX);
  printf("\\"directions\\":[");
  BATON_DIRECTIONS(DIRECTION_JSON)
  printf("],");
  printf("\\"reasons\\":[");
  BATON_REASONS(REASON_JSON)
  printf("]}\\n");
  return 0;
}
`;
}

let printed: Printed;
let dir: string;

before(() => {
  if (!haveCc) return;
  dir = mkdtempSync(join(tmpdir(), 'baton-abi-'));
  writeFileSync(join(dir, 'layout.c'), cProgram());
  execFileSync('cc', [
    '-Wall',
    '-Werror',
    '-I',
    join(root, 'bpf/include'),
    '-o',
    join(dir, 'layout'),
    join(dir, 'layout.c'),
  ]);
  printed = JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' })) as Printed;
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

test('baton map structs match bpf/include/baton/abi.h byte for byte', { skip: !haveCc && 'no C compiler (cc)' }, () => {
  for (const [name, l] of Object.entries(LAYOUTS)) {
    assert.deepEqual({ size: l.size, fields: l.fields }, printed.structs[name], `struct ${name}`);
  }
});

test('libbpf option structs match the installed libbpf.h', { skip: !haveCc && 'no C compiler (cc)' }, () => {
  for (const l of LIBBPF_STRUCTS) {
    assert.deepEqual({ size: l.size, fields: l.fields }, printed.structs[l.name], `struct ${l.name}`);
  }
});

test('constants and the reason table match the C header', { skip: !haveCc && 'no C compiler (cc)' }, () => {
  assert.deepEqual(printed.consts, {
    ABI_VERSION,
    MAX_LEGS,
    XLATE_F_TS,
    TRACK_F_FIN,
    TRACK_F_RST,
    TRACK_F_SEEN,
    STATE_BLOCK: FlowState.BLOCK,
    STATE_FORWARD: FlowState.FORWARD,
    STATE_HOLD: FlowState.HOLD,
    STATE_SUPERSEDED: FlowState.SUPERSEDED,
    CTL_SET_STATE: CtlOp.SET_STATE,
    CTL_APPEND_LEG: CtlOp.APPEND_LEG,
    KIND_CLIENT: FlowKind.CLIENT,
    KIND_BACKEND: FlowKind.BACKEND,
    R_MAX: REASONS.length,
    PROBE_F_FOUND,
    PROBE_F_TSTAMP_OK,
    PROBE_F_USEC_TS,
    PROBE_F_REPAIR,
    PROBE_F_SACK_OK,
    PROBE_F_WSCALE_OK,
    PROBE_BATCH,
    KIND_MIGRATED: FlowKind.MIGRATED,
    FID_HOLD: FidState.HOLD,
    FID_RESTORE: FidState.RESTORE,
    FID_CTL_SET_STATE: FidCtlOp.SET_STATE,
  });
  assert.deepEqual(
    printed.reasons,
    REASONS.map(([a, r]) => [a, r]),
  );
  assert.deepEqual(printed.directions, [...DIRECTIONS]);
});

test('owner forwarding constants match the C header', { skip: !haveCc && 'no C compiler (cc)' }, () => {
  assert.deepEqual(printed.ownerConsts, {
    KIND_OWNER: FlowKind.OWNER,
    HDR_VERSION: OWNER_HDR_VERSION,
    PORT_DEFAULT: OWNER_PORT_DEFAULT,
    MAX_HOPS_DEFAULT: OWNER_MAX_HOPS_DEFAULT,
    SECOND_CHANCE_BUCKETS,
    SPORT_BASE: OWNER_SPORT_BASE,
    SPORT_MASK: OWNER_SPORT_MASK,
    PEERS_MAX,
  });
});

test('kernel socket structs used by control/tcp match the installed uapi headers', {
  skip: !haveCc && 'no C compiler (cc)',
}, () => {
  for (const l of TCP_STRUCTS) {
    const got = printed.structs[l.name];
    assert.ok(got, `struct ${l.name} printed`);
    assert.deepEqual(got.fields, l.fields, `struct ${l.name} offsets`);
    // tcp_info grows with every kernel; baton reads a prefix and the kernel copies min(len, its size).
    if (l === TCP_INFO_LAYOUT)
      assert.ok(got.size >= l.size, `struct tcp_info is at least ${l.size} bytes (headers say ${got.size})`);
    else assert.equal(got.size, l.size, `struct ${l.name} size`);
  }
});
