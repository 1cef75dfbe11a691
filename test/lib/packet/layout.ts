/**
 * Header sizes, EtherTypes and IP protocol numbers of the frames the packet
 * library builds and parses (Ethernet II, IPv4/IPv6, TCP/UDP), and the
 * checks that a spec's value fits the header field it goes into.
 */

export const ETH_HLEN = 14;
export const IPV4_HLEN = 20;
export const IPV6_HLEN = 40;
export const TCP_HLEN = 20;
export const UDP_HLEN = 8;
export const TCP_MAX_OPTIONS = 40; // data offset is 4 bits of 32-bit words: 60 - 20

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function u8(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new Error(`${what} must be an integer 0..255, got ${n}`);
  return n;
}
export function u16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`${what} must be an integer 0..65535, got ${n}`);
  return n;
}
/** Sequence-space values wrap, so tests may write `isn + len` without masking. */
export function u32wrap(n: number, what: string): number {
  if (!Number.isInteger(n)) throw new Error(`${what} must be an integer, got ${n}`);
  return n >>> 0;
}
