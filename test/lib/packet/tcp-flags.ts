/**
 * TCP flags as the fixtures write them: letters ('SA', 'PA', scapy's
 * convention) or a flag set, to and from the 9-bit header value.
 */
export interface TcpFlagSet {
  fin?: boolean;
  syn?: boolean;
  rst?: boolean;
  psh?: boolean;
  ack?: boolean;
  urg?: boolean;
  ece?: boolean;
  cwr?: boolean;
  ns?: boolean;
}

// Letter order follows bit order (scapy convention), so SYN+ACK prints 'SA'.
const FLAG_LETTERS: ReadonlyArray<[string, keyof TcpFlagSet, number]> = [
  ['F', 'fin', 0x001],
  ['S', 'syn', 0x002],
  ['R', 'rst', 0x004],
  ['P', 'psh', 0x008],
  ['A', 'ack', 0x010],
  ['U', 'urg', 0x020],
  ['E', 'ece', 0x040],
  ['C', 'cwr', 0x080],
  ['N', 'ns', 0x100],
];

/** 'SA', 'pa', { syn: true } -> 9-bit flag value (NS in bit 8). Letters may come in any order. */
export function tcpFlagBits(flags: string | TcpFlagSet): number {
  let bits = 0;
  if (typeof flags === 'string') {
    for (const ch of flags.toUpperCase()) {
      const f = FLAG_LETTERS.find(([l]) => l === ch);
      if (!f)
        throw new Error(`unknown TCP flag letter ${JSON.stringify(ch)} in ${JSON.stringify(flags)} (use FSRPAUECN)`);
      bits |= f[2];
    }
    return bits;
  }
  for (const [, key, bit] of FLAG_LETTERS) if (flags[key]) bits |= bit;
  return bits;
}

/** Canonical flag string, e.g. 0x12 -> 'SA'; '' when no flag is set. */
export function tcpFlagsToString(bits: number): string {
  return FLAG_LETTERS.filter(([, , bit]) => bits & bit)
    .map(([l]) => l)
    .join('');
}
