/**
 * Address arithmetic, just enough for the testbed: parse a CIDR, compute its
 * network prefix, and refuse addresses outside the benchmarking ranges
 * (198.18.0.0/15, 2001:db8::/32) so a testbed can never shadow a real network.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ipv4Bytes, ipv6Bytes } from '../../control/net/addr.js';

const v4ToBig = (a: string): bigint => BigInt(`0x${ipv4Bytes(a).toString('hex')}`);
const v6ToBig = (a: string): bigint => BigInt(`0x${ipv6Bytes(a).toString('hex')}`);

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}

function bigToV6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  // Compress the longest run (>= 2) of zero groups, as `ip` prints it.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Cidr {
  family: 4 | 6;
  addr: string;
  len: number;
  /** network prefix with host bits cleared, e.g. 198.19.0.0/16 */
  network: string;
}

export function parseCidr(s: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  const addr = m?.[1] ?? s;
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (!family) throw new Error(`not an IP address or prefix: ${JSON.stringify(s)}`);
  const bits = family === 4 ? 32 : 128;
  const len = m ? Number(m[2]) : bits;
  if (len > bits) throw new Error(`prefix length out of range: ${s}`);
  const n = family === 4 ? v4ToBig(addr) : v6ToBig(addr);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  const net = n & mask;
  return { family, addr, len, network: `${family === 4 ? bigToV4(net) : bigToV6(net)}/${len}` };
}

/** Testbeds only use the benchmarking ranges, so they can never shadow a real network. */
export function assertTestRange(c: Cidr, what: string): void {
  const ok =
    c.family === 4
      ? c.len >= 15 && v4ToBig(c.addr) >> 17n === v4ToBig('198.18.0.0') >> 17n
      : c.len >= 32 && v6ToBig(c.addr) >> 96n === 0x20010db8n;
  if (!ok) throw new Error(`${what}: ${c.addr}/${c.len} is outside 198.18.0.0/15 and 2001:db8::/32`);
}
