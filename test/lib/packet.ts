/**
 * Packet fixtures for datapath tests, Katran style: build a frame, feed it to
 * the XDP program, then parse / verify / diff what comes out.
 *
 * Pure TypeScript on node:buffer, no dependencies, so fixture tests run
 * anywhere the unit tests run. Scope is what baton's datapath sees:
 * Ethernet II + (IPv4 | IPv6 without extension headers) + (TCP | UDP).
 *
 * The library lives in test/lib/packet/, one module per concern; this file
 * re-exports its public part so tests import one path.
 */
export { bytesToIpv4, bytesToIpv6, bytesToMac, ipv4ToBytes, ipv6ToBytes, macToBytes } from './packet/addresses.js';
export { buildPacket } from './packet/build.js';
export { internetChecksum } from './packet/checksum.js';
export { diffPackets } from './packet/diff.js';
export { hexDump } from './packet/hex.js';
export { ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP } from './packet/layout.js';
export { parsePacket } from './packet/parse.js';
export type {
  ChecksumCheck,
  ParsedEth,
  ParsedIpv4,
  ParsedIpv6,
  ParsedPacket,
  ParsedTcp,
  ParsedUdp,
} from './packet/parsed.js';
export {
  type Corruption,
  DEFAULT_DST_MAC,
  DEFAULT_SRC_MAC,
  type EthSpec,
  type Ipv4Spec,
  type Ipv6Spec,
  type PacketSpec,
  type TcpSpec,
  type UdpSpec,
} from './packet/spec.js';
export { type TcpFlagSet, tcpFlagBits, tcpFlagsToString } from './packet/tcp-flags.js';
export {
  type DecodedTcpOptions,
  decodeTcpOptions,
  encodeTcpOptions,
  type SackBlock,
  type TcpOption,
} from './packet/tcp-options.js';
export { verifyChecksums } from './packet/verify.js';
