/**
 * Client TCP profiles for the splice matrix (issue 13): the sysctls and the
 * route MSS a client namespace is given so its connections look like
 * Windows (timestamps off), a SACK-less stack, a small-MTU or mobile path
 * (MSS 536 / 1220), a big receive buffer (wscale 14) or an Apple client
 * (ECN requested). Used by test/e2e/profiles.test.ts (a reduced matrix that
 * still holds every value of every axis) and scripts/profile-matrix.ts (all
 * of them).
 */
import type { Testbed } from '../testbed/index.js';

export type WscaleAxis = 'off' | 'default' | 14;
export type MssAxis = 536 | 1220 | 1460;

export interface ClientTcpProfile {
  timestamps: boolean;
  sack: boolean;
  wscale: WscaleAxis;
  mss: MssAxis;
  ecn: boolean;
}

export const AXES = {
  timestamps: [true, false],
  sack: [true, false],
  wscale: ['off', 'default', 14],
  mss: [536, 1220, 1460],
  ecn: [false, true],
} as const;

/** Every combination of every axis (2 x 2 x 3 x 3 x 2 = 72). */
export function fullMatrix(): ClientTcpProfile[] {
  const out: ClientTcpProfile[] = [];
  for (const timestamps of AXES.timestamps)
    for (const sack of AXES.sack)
      for (const wscale of AXES.wscale)
        for (const mss of AXES.mss) for (const ecn of AXES.ecn) out.push({ timestamps, sack, wscale, mss, ecn });
  return out;
}

/**
 * Four rows that hold every value of every axis at least once, and the two
 * profiles the issue found refused (timestamps off; timestamps and SACK off).
 */
export function reducedMatrix(): ClientTcpProfile[] {
  return [
    { timestamps: true, sack: true, wscale: 'default', mss: 1460, ecn: false },
    { timestamps: false, sack: false, wscale: 'off', mss: 536, ecn: true },
    { timestamps: false, sack: true, wscale: 14, mss: 1220, ecn: true },
    { timestamps: true, sack: false, wscale: 'default', mss: 536, ecn: false },
  ];
}

export function profileName(p: ClientTcpProfile): string {
  return `ts ${p.timestamps ? 'on' : 'off'}, sack ${p.sack ? 'on' : 'off'}, wscale ${p.wscale}, mss ${p.mss}, ecn ${p.ecn ? 'on' : 'off'}`;
}

/** Largest tcp_rmem the kernel turns into window scale 14 (ilog2(2^30) - 15 = 15, clamped to 14). */
const RMEM_WSCALE_14 = 1 << 30;

/**
 * Gives `node`'s stack the profile for the connections it opens from now
 * on (sysctls are per namespace and read at connect; the route to `dst`
 * gets advmss). The previous values are not restored: the caller applies
 * the next profile or destroys the testbed.
 */
export async function applyClientProfile(
  tb: Testbed,
  node: string,
  p: ClientTcpProfile,
  dsts: { v4: string; v6: string },
): Promise<void> {
  const rmemMax = p.wscale === 14 ? RMEM_WSCALE_14 : 6291456; // Linux's default tcp_rmem[2]
  await tb.exec(node, 'sysctl', [
    '-qw',
    `net.ipv4.tcp_timestamps=${p.timestamps ? 1 : 0}`,
    `net.ipv4.tcp_sack=${p.sack ? 1 : 0}`,
    `net.ipv4.tcp_window_scaling=${p.wscale === 'off' ? 0 : 1}`,
    `net.ipv4.tcp_ecn=${p.ecn ? 1 : 0}`,
    `net.ipv4.tcp_rmem=4096 131072 ${rmemMax}`,
  ]);
  for (const [fam, dst, plen] of [
    ['-4', dsts.v4, 32],
    ['-6', dsts.v6, 128],
  ] as const) {
    const via = (await tb.exec(node, 'ip', [fam, '-o', 'route', 'get', dst])).stdout;
    const gw = / via (\S+)/.exec(via)?.[1];
    const dev = / dev (\S+)/.exec(via)?.[1];
    if (!dev) throw new Error(`no route from ${node} to ${dst}: ${via}`);
    await tb.exec(node, 'ip', [
      fam,
      'route',
      'replace',
      `${dst}/${plen}`,
      ...(gw ? ['via', gw] : []),
      'dev',
      dev,
      'advmss',
      String(p.mss),
    ]);
  }
}

/** A Tcp counter of a node's stack (/proc/net/snmp), e.g. OutRsts or RetransSegs. */
export async function tcpCounter(tb: Testbed, node: string, name: string): Promise<number> {
  const snmp = (await tb.exec(node, 'cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
  const i = names?.indexOf(name) ?? -1;
  if (i < 0 || !values?.[i]) throw new Error(`no Tcp ${name} in /proc/net/snmp of ${node}`);
  return Number(values[i]);
}

/** Tcp OutRsts of a node, to prove no connection was reset. */
export const outRsts = (tb: Testbed, node: string): Promise<number> => tcpCounter(tb, node, 'OutRsts');
