import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildPacket,
  bytesToIpv4,
  bytesToIpv6,
  bytesToMac,
  decodeTcpOptions,
  diffPackets,
  encodeTcpOptions,
  internetChecksum,
  ipv4ToBytes,
  ipv6ToBytes,
  macToBytes,
  type PacketSpec,
  parsePacket,
  type TcpOption,
  tcpFlagBits,
  tcpFlagsToString,
  verifyChecksums,
} from '../lib/packet.js';

const V4 = { version: 4, src: '198.18.0.1', dst: '198.19.255.254' } as const;
const V6 = { version: 6, src: '2001:db8::1', dst: '2001:db8:0:1::2' } as const;

const LINUX_SYN_OPTIONS: TcpOption[] = [
  { kind: 'mss', value: 1460 },
  { kind: 'sackPermitted' },
  { kind: 'timestamp', tsval: 123456, tsecr: 0 },
  { kind: 'nop' },
  { kind: 'wscale', shift: 7 },
];

function synV4(extra: Partial<PacketSpec> = {}): PacketSpec {
  return {
    ip: { ...V4, id: 0x1234, df: true },
    tcp: { sport: 40000, dport: 80, seq: 1000, ack: 0, flags: 'S', window: 64240, options: LINUX_SYN_OPTIONS },
    ...extra,
  };
}

function dataV6(extra: Partial<PacketSpec> = {}): PacketSpec {
  return {
    ip: { ...V6, flowLabel: 0x12345 },
    tcp: {
      sport: 40000,
      dport: 443,
      seq: 0xfffffff0,
      ack: 5000,
      flags: 'PA',
      window: 502,
      options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 1, tsecr: 2 }],
    },
    payload: 'hello, baton',
    ...extra,
  };
}

describe('address helpers', () => {
  it('converts IPv4 both ways and rejects junk', () => {
    assert.deepEqual([...ipv4ToBytes('198.18.0.1')], [198, 18, 0, 1]);
    assert.equal(bytesToIpv4(Buffer.from([198, 19, 255, 254])), '198.19.255.254');
    for (const bad of ['198.18.0', '198.18.0.256', '198.18.0.1e0', '', '198.18.0.-1']) {
      assert.throws(() => ipv4ToBytes(bad), /invalid IPv4/);
    }
  });

  it('parses compressed IPv6 and prints RFC 5952 form', () => {
    assert.equal(ipv6ToBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
    assert.equal(ipv6ToBytes('::').toString('hex'), '0'.repeat(32));
    assert.equal(ipv6ToBytes('2001:db8::').toString('hex'), `20010db8${'0'.repeat(24)}`);
    assert.equal(ipv6ToBytes('::ffff:198.18.0.1').toString('hex'), '00000000000000000000ffffc6120001');
    const cases: Array<[string, string]> = [
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
      ['0:0:0:0:0:0:0:0', '::'],
      ['::1', '::1'],
      ['2001:db8::', '2001:db8::'],
    ];
    for (const [input, canonical] of cases) assert.equal(bytesToIpv6(ipv6ToBytes(input)), canonical, input);
    for (const bad of ['2001:db8', '2001::db8::1', '1:2:3:4:5:6:7:8:9', '2001:db8::g', ':1::', '1:2:3:4:5:6:7::8']) {
      assert.throws(() => ipv6ToBytes(bad), /invalid IPv6/, bad);
    }
  });

  it('converts MACs', () => {
    assert.deepEqual([...macToBytes('02:00:00:00:00:0A')], [2, 0, 0, 0, 0, 10]);
    assert.deepEqual([...macToBytes('02-00-00-00-00-0a')], [2, 0, 0, 0, 0, 10]);
    assert.equal(bytesToMac(Buffer.from([2, 0, 0, 0, 0, 0xab])), '02:00:00:00:00:ab');
    assert.throws(() => macToBytes('02:00:00:00:00'), /invalid MAC/);
  });
});

describe('checksums against independent values', () => {
  it('matches the RFC 1071 section 3 example', () => {
    // RFC 1071: 0001 f203 f4f5 f6f7 sums to ddf2, so the checksum is ~ddf2 = 220d.
    assert.equal(internetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d);
    // An odd-length split must not change the result.
    assert.equal(internetChecksum(Buffer.from('0001f2', 'hex'), Buffer.from('03f4f5f6f7', 'hex')), 0x220d);
  });

  it('builds a Linux-style IPv4 SYN byte-for-byte (verified with tcpdump -vv)', () => {
    const frame = buildPacket(synV4());
    // tcpdump 4.x -vv on this frame: "cksum 0x3e2f (correct)" and no "bad cksum" for the IP header.
    // IPv4 header checksum by hand: 4500+003c+1234+4000+4006+c612+0001+c613+fffe = 0x3639a,
    // folded 0x639a + 0x3 = 0x639d, complemented = 0x9c62.
    assert.equal(
      frame.toString('hex'),
      '020000000002' +
        '020000000001' +
        '0800' +
        '4500003c12344000400' +
        '69c62' +
        'c6120001c613fffe' +
        '9c400050000003e800000000a002faf0' +
        '3e2f' +
        '0000' +
        '020405b4' +
        '0402' +
        '080a0001e24000000000' +
        '01' +
        '030307',
    );
    const p = parsePacket(frame);
    assert.equal(p.ip?.version === 4 && p.ip.checksum, 0x9c62);
    assert.equal(p.tcp?.checksum, 0x3e2f);
    assert.deepEqual(verifyChecksums(frame), { ok: true, errors: [] });
  });

  it('computes IPv6 pseudo-header checksums (verified with tcpdump -vv)', () => {
    // tcpdump: "Flags [P.], cksum 0x3283 (correct)".
    const tcp = buildPacket(dataV6());
    assert.equal(parsePacket(tcp).tcp?.checksum, 0x3283);
    assert.deepEqual(verifyChecksums(tcp), { ok: true, errors: [] });
    // tcpdump: "[udp sum ok]" for both of these.
    const udp6 = buildPacket({
      ip: { version: 6, src: '2001:db8::1', dst: '2001:db8::2' },
      udp: { sport: 5353, dport: 53 },
      payload: 'abc',
    });
    assert.equal(udp6.readUInt16BE(14 + 40 + 6), 0xcae2);
    const udp4 = buildPacket({
      ip: { version: 4, src: '198.18.0.1', dst: '198.18.0.2' },
      udp: { sport: 5353, dport: 53 },
      payload: 'abcd',
    });
    assert.equal(udp4.readUInt16BE(14 + 20 + 6), 0x99c9);
    assert.equal(udp4.readUInt16BE(14 + 10), 0xeea5);
  });
});

describe('build then parse', () => {
  it('round-trips IPv4/TCP fields', () => {
    const frame = buildPacket({
      eth: { src: '02:00:00:00:00:aa', dst: '02:00:00:00:00:bb' },
      ip: { ...V4, ttl: 7, id: 0xbeef, tos: 0xb8, df: true },
      tcp: { sport: 1234, dport: 8080, seq: 2 ** 32 + 5, ack: 77, flags: 'PA', window: 1000, urg: 3 },
      payload: Buffer.from([1, 2, 3]),
    });
    const p = parsePacket(frame);
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.eth, { dst: '02:00:00:00:00:bb', src: '02:00:00:00:00:aa', etherType: 0x0800 });
    assert.ok(p.ip?.version === 4);
    assert.equal(p.ip.src, '198.18.0.1');
    assert.equal(p.ip.dst, '198.19.255.254');
    assert.equal(p.ip.ttl, 7);
    assert.equal(p.ip.id, 0xbeef);
    assert.equal(p.ip.tos, 0xb8);
    assert.equal(p.ip.df, true);
    assert.equal(p.ip.mf, false);
    assert.equal(p.ip.totalLength, 20 + 20 + 3);
    assert.equal(p.ip.protocol, 6);
    assert.ok(p.tcp);
    assert.equal(p.tcp.sport, 1234);
    assert.equal(p.tcp.dport, 8080);
    assert.equal(p.tcp.seq, 5, 'sequence numbers wrap modulo 2^32');
    assert.equal(p.tcp.ack, 77);
    assert.equal(p.tcp.flags, 'PA');
    assert.equal(p.tcp.window, 1000);
    assert.equal(p.tcp.urg, 3);
    assert.equal(p.tcp.dataOffset, 5);
    assert.deepEqual(p.tcp.options, []);
    assert.deepEqual([...p.payload], [1, 2, 3]);
    assert.equal(p.trailer.length, 0);
    assert.ok(p.checksums.every((c) => c.ok));
  });

  it('uses locally administered default MACs', () => {
    const p = parsePacket(buildPacket(synV4()));
    assert.equal(p.eth?.src, '02:00:00:00:00:01');
    assert.equal(p.eth?.dst, '02:00:00:00:00:02');
  });

  it('round-trips IPv6/TCP fields', () => {
    const frame = buildPacket(dataV6({ ip: { ...V6, hopLimit: 3, trafficClass: 0x2e, flowLabel: 0xfffff } }));
    const p = parsePacket(frame);
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.ip, {
      version: 6,
      trafficClass: 0x2e,
      flowLabel: 0xfffff,
      payloadLength: 20 + 12 + 12,
      protocol: 6,
      hopLimit: 3,
      src: '2001:db8::1',
      dst: '2001:db8:0:1::2',
    });
    assert.equal(p.tcp?.seq, 0xfffffff0);
    assert.equal(p.tcp?.flags, 'PA');
    assert.equal(p.payload.toString(), 'hello, baton');
    assert.deepEqual(verifyChecksums(frame), { ok: true, errors: [] });
  });

  it('round-trips every common flag combination', () => {
    for (const flags of ['S', 'SA', 'A', 'PA', 'FA', 'R', 'RA', '', 'FSRPAUECN']) {
      const p = parsePacket(buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags } }));
      assert.equal(p.tcp?.flags, flags);
    }
    assert.equal(tcpFlagsToString(tcpFlagBits('as')), 'SA', 'letters in any order and case');
    assert.equal(tcpFlagsToString(tcpFlagBits({ fin: true, ack: true })), 'FA');
    assert.equal(tcpFlagBits({ syn: true, ack: true }), 0x12);
    assert.throws(() => tcpFlagBits('SX'), /unknown TCP flag letter "X"/);
  });

  it('round-trips UDP over IPv4 and IPv6', () => {
    for (const ip of [V4, V6]) {
      const frame = buildPacket({ ip, udp: { sport: 4789, dport: 53 }, payload: 'query' });
      const p = parsePacket(frame);
      assert.deepEqual(p.errors, []);
      assert.equal(p.tcp, undefined);
      assert.equal(p.udp?.sport, 4789);
      assert.equal(p.udp?.dport, 53);
      assert.equal(p.udp?.length, 8 + 5);
      assert.equal(p.payload.toString(), 'query');
      assert.deepEqual(verifyChecksums(frame), { ok: true, errors: [] });
    }
  });

  it('treats a zero UDP checksum as "unused" on IPv4 but invalid on IPv6', () => {
    const v4 = buildPacket({ ip: V4, udp: { sport: 1, dport: 2 }, payload: 'x' });
    v4.writeUInt16BE(0, 14 + 20 + 6);
    assert.deepEqual(verifyChecksums(v4), { ok: true, errors: [] });
    const v6 = buildPacket({ ip: V6, udp: { sport: 1, dport: 2 }, payload: 'x' });
    v6.writeUInt16BE(0, 14 + 40 + 6);
    const r = verifyChecksums(v6);
    assert.equal(r.ok, false);
    assert.match(r.errors.join(), /zero UDP checksum is not allowed over IPv6/);
  });

  it("accepts 0xffff where 0x0000 was computed (one's complement equivalence)", () => {
    // Hunt for a segment whose TCP checksum is 0 by varying the urgent pointer; then store -0.
    for (let urg = 0; urg < 0x10000; urg++) {
      const frame = buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'A', urg } });
      if (frame.readUInt16BE(14 + 20 + 16) !== 0) continue;
      frame.writeUInt16BE(0xffff, 14 + 20 + 16);
      assert.deepEqual(verifyChecksums(frame), { ok: true, errors: [] });
      return;
    }
    assert.fail('no zero checksum found');
  });

  it('decodes an unknown protocol as a raw IP payload', () => {
    const frame = buildPacket({ ip: { ...V6, protocol: 58 }, payload: Buffer.from([128, 0, 0, 0]) });
    const p = parsePacket(frame);
    assert.deepEqual(p.errors, []);
    assert.deepEqual([...p.payload], [128, 0, 0, 0]);
  });

  it('reports Ethernet padding as a trailer, not payload', () => {
    const frame = Buffer.concat([buildPacket({ ip: V4, udp: { sport: 1, dport: 2 } }), Buffer.alloc(18)]);
    const p = parsePacket(frame);
    assert.deepEqual(p.errors, []);
    assert.equal(p.payload.length, 0);
    assert.equal(p.trailer.length, 18);
    assert.equal(verifyChecksums(frame).ok, true);
  });

  it('rejects contradictory specs with a clear message', () => {
    assert.throws(
      () => buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'S' }, udp: { sport: 1, dport: 2 } }),
      /not both/,
    );
    assert.throws(
      () => buildPacket({ ip: { ...V4, src: '198.18.0.300' }, udp: { sport: 1, dport: 2 } }),
      /invalid IPv4/,
    );
    assert.throws(() => buildPacket({ ip: V4, tcp: { sport: 70000, dport: 2, flags: 'S' } }), /tcp.sport/);
    assert.throws(() => buildPacket({ ip: V4 }), /ip.protocol is required/);
  });
});

describe('TCP options', () => {
  const roundTrip = (options: TcpOption[]): TcpOption[] => {
    const p = parsePacket(buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'A', options } }));
    assert.deepEqual(p.errors, []);
    assert.equal(verifyChecksums(buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'A', options } })).ok, true);
    return p.tcp?.options ?? [];
  };

  it('round-trips the Linux SYN option set', () => {
    assert.deepEqual(roundTrip(LINUX_SYN_OPTIONS), LINUX_SYN_OPTIONS);
  });

  it('round-trips SACK with 1 to 4 blocks', () => {
    for (let n = 1; n <= 4; n++) {
      const blocks = Array.from({ length: n }, (_, i): [number, number] => [
        0xfffffff0 + i * 100,
        0xfffffff0 + i * 100 + 50,
      ]);
      const options: TcpOption[] = [
        { kind: 'nop' },
        { kind: 'nop' },
        { kind: 'sack', blocks: blocks.map(([l, r]) => [l >>> 0, r >>> 0]) },
      ];
      const frame = buildPacket({ ip: V6, tcp: { sport: 1, dport: 2, flags: 'A', options } });
      const p = parsePacket(frame);
      assert.deepEqual(p.errors, []);
      assert.deepEqual(p.tcp?.options, options, `${n} blocks`);
      assert.equal(p.tcp?.dataOffset, 5 + (2 + 2 + 8 * n) / 4);
      assert.equal(verifyChecksums(frame).ok, true);
    }
    assert.throws(() => encodeTcpOptions([{ kind: 'sack', blocks: [] }]), /1\.\.4 blocks/);
    assert.throws(
      () =>
        encodeTcpOptions([
          {
            kind: 'sack',
            blocks: [
              [1, 2],
              [3, 4],
              [5, 6],
              [7, 8],
              [9, 10],
            ],
          },
        ]),
      /1\.\.4 blocks/,
    );
  });

  it('round-trips timestamps next to SACK, as in a Linux dup-ACK', () => {
    const options: TcpOption[] = [
      { kind: 'nop' },
      { kind: 'nop' },
      { kind: 'timestamp', tsval: 0xdeadbeef, tsecr: 0xffffffff },
      { kind: 'nop' },
      { kind: 'nop' },
      {
        kind: 'sack',
        blocks: [
          [100, 200],
          [300, 400],
          [500, 600],
        ],
      },
    ];
    assert.deepEqual(roundTrip(options), options);
  });

  it('pads to 4 bytes with EOL and does not report the padding as an option', () => {
    const options: TcpOption[] = [
      { kind: 'mss', value: 1400 },
      { kind: 'wscale', shift: 14 },
    ];
    assert.equal(encodeTcpOptions(options).toString('hex'), '02040578' + '03030e00');
    const p = parsePacket(buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'S', options } }));
    assert.deepEqual(p.tcp?.options, options);
    assert.deepEqual([...(p.tcp?.optionsPadding ?? [])], [0]);
    assert.equal(p.tcp?.dataOffset, 7);
  });

  it('keeps an explicit EOL that is followed by more than alignment padding', () => {
    const decoded = decodeTcpOptions(Buffer.from('0000000000000000', 'hex'));
    assert.deepEqual(decoded.options, [{ kind: 'eol' }]);
    assert.equal(decoded.padding.length, 7);
  });

  it('round-trips raw options and decodes wrong-length known kinds as raw', () => {
    const raw: TcpOption[] = [
      { kind: 'raw', type: 254, data: Buffer.from([0xf9, 0x89, 1, 2]) },
      { kind: 'nop' },
      { kind: 'nop' },
    ];
    assert.deepEqual(roundTrip(raw), raw);
    // MSS with length 3 is not an MSS option a stack would honour.
    const d = decodeTcpOptions(Buffer.from('0203050000000000', 'hex'));
    assert.deepEqual(d.options[0], { kind: 'raw', type: 2, data: Buffer.from([5]) });
  });

  it('refuses option sets over 40 bytes', () => {
    const ts: TcpOption = { kind: 'timestamp', tsval: 1, tsecr: 2 };
    assert.throws(() => encodeTcpOptions([ts, ts, ts, ts, ts]), /max is 40/);
  });
});

describe('corruption is detected', () => {
  const clean = (): PacketSpec => synV4({ payload: 'abcdefgh' });

  it('ipChecksum: only the IPv4 header checksum is wrong', () => {
    const frame = buildPacket({ ...clean(), corrupt: { ipChecksum: true } });
    const r = verifyChecksums(frame);
    assert.equal(r.ok, false);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0] ?? '', /^ipv4 checksum 0x[0-9a-f]{4} is wrong, expected 0x9c/);
    assert.deepEqual(parsePacket(frame).errors, [], 'structure is intact');
    const diff = diffPackets(buildPacket(clean()), frame) ?? '';
    assert.match(diff, /ip\.checksum: expected/);
    assert.doesNotMatch(diff, /tcp\./);
    assert.throws(
      () => buildPacket({ ip: V6, udp: { sport: 1, dport: 2 }, corrupt: { ipChecksum: true } }),
      /IPv6 has no header checksum/,
    );
  });

  it('l4Checksum: TCP and UDP, IPv4 and IPv6', () => {
    const specs: PacketSpec[] = [
      clean(),
      dataV6(),
      { ip: V4, udp: { sport: 1, dport: 2 }, payload: 'u' },
      { ip: V6, udp: { sport: 1, dport: 2 }, payload: 'u' },
    ];
    for (const spec of specs) {
      const frame = buildPacket({ ...spec, corrupt: { l4Checksum: true } });
      const r = verifyChecksums(frame);
      assert.equal(r.ok, false);
      assert.equal(r.errors.length, 1);
      assert.match(r.errors[0] ?? '', spec.tcp ? /^tcp checksum .* is wrong/ : /^udp checksum .* is wrong/);
      assert.deepEqual(parsePacket(frame).errors, []);
    }
  });

  it('truncateTo: short frames are reported, whichever layer is cut', () => {
    const full = buildPacket(clean());
    for (let len = 0; len < full.length; len++) {
      const frame = buildPacket({ ...clean(), corrupt: { truncateTo: len } });
      assert.equal(frame.length, len);
      const p = parsePacket(frame);
      assert.ok(p.errors.length > 0, `truncated to ${len}: parser noticed`);
      assert.equal(verifyChecksums(frame).ok, false, `truncated to ${len}: verifier noticed`);
    }
    const cut = parsePacket(buildPacket({ ...clean(), corrupt: { truncateTo: full.length - 3 } }));
    assert.match(cut.errors.join(), /ip\.totalLength 68 exceeds the 65 bytes present/);
    assert.match(
      verifyChecksums(buildPacket({ ...clean(), corrupt: { truncateTo: 70 } })).errors.join(),
      /tcp checksum cannot be verified: frame truncated/,
    );
    assert.throws(() => buildPacket({ ...clean(), corrupt: { truncateTo: full.length + 1 } }), /truncateTo/);
  });

  it('ipTotalLength: too long, too short, and below the header', () => {
    for (const ip of [V4, V6] as const) {
      const hdr = ip.version === 4 ? 20 : 40;
      const real = hdr + 20 + 5;
      const spec: PacketSpec = { ip, tcp: { sport: 1, dport: 2, flags: 'A' }, payload: 'abcde' };
      const longer = buildPacket({ ...spec, corrupt: { ipTotalLength: real + 10 } });
      assert.match(parsePacket(longer).errors.join(), /exceeds the \d+ bytes present/);
      assert.equal(verifyChecksums(longer).ok, false);
      // Shorter but still covering the TCP header: the last bytes look like padding, so only the checksum can tell.
      const shorter = buildPacket({ ...spec, corrupt: { ipTotalLength: real - 2 } });
      assert.equal(parsePacket(shorter).trailer.length, 2);
      assert.match(verifyChecksums(shorter).errors.join(), /tcp checksum .* is wrong/);
      const tiny = buildPacket({ ...spec, corrupt: { ipTotalLength: hdr + 10 } });
      assert.match(parsePacket(tiny).errors.join(), /TCP header truncated: 10 bytes/);
    }
    const below = buildPacket({ ...clean(), corrupt: { ipTotalLength: 12 } });
    assert.match(parsePacket(below).errors.join(), /ip\.totalLength 12 is smaller than the 20-byte header/);
    // The IPv4 header checksum is computed after the length is changed, so it alone stays valid.
    assert.equal(parsePacket(below).checksums.find((c) => c.layer === 'ipv4')?.ok, true);
  });

  it('tcpDataOffset: below 5 and beyond the segment', () => {
    const low = parsePacket(buildPacket({ ...clean(), corrupt: { tcpDataOffset: 3 } }));
    assert.match(low.errors.join(), /tcp\.dataOffset 3 \(12 bytes\) is below the 20-byte minimum/);
    assert.ok(
      low.checksums.every((c) => c.ok),
      'checksums were computed over the corrupted field',
    );
    const high = parsePacket(buildPacket({ ...clean(), corrupt: { tcpDataOffset: 15 } }));
    assert.match(high.errors.join(), /tcp\.dataOffset 15 \(60 bytes\) runs past the 48-byte segment/);
  });

  it('ipIhl: below 5, claiming options, and past the frame', () => {
    const low = buildPacket({ ...clean(), corrupt: { ipIhl: 4 } });
    assert.match(parsePacket(low).errors.join(), /ip\.ihl 4 \(16 bytes\) is below the 20-byte minimum/);
    assert.equal(verifyChecksums(low).ok, false);
    // IHL 6 swallows 4 TCP bytes as IP options; both checksums then fail.
    const six = buildPacket({ ...clean(), corrupt: { ipIhl: 6 } });
    const r = verifyChecksums(six);
    assert.equal(r.ok, false);
    assert.match(r.errors.join(), /ipv4 checksum/);
    const beyond = buildPacket({ ip: V4, udp: { sport: 1, dport: 2 }, corrupt: { ipIhl: 15 } });
    assert.match(parsePacket(beyond).errors.join(), /ip\.ihl 15 \(60 bytes\) runs past the 28 bytes present/);
    assert.throws(() => buildPacket({ ip: V6, udp: { sport: 1, dport: 2 }, corrupt: { ipIhl: 5 } }), /IPv6 has no IHL/);
  });

  it('badOptionLength: the last option runs past the header', () => {
    const frame = buildPacket({ ...clean(), corrupt: { badOptionLength: true } });
    const p = parsePacket(frame);
    // The last length-carrying option is wscale at option offset 17 of a 20-byte area.
    assert.deepEqual(p.errors, [
      'tcp.options: option kind 3 at offset 17 has length 7, running past the end of the 20-byte options area by 4 bytes',
    ]);
    assert.deepEqual(p.tcp?.options.slice(0, 3), LINUX_SYN_OPTIONS.slice(0, 3), 'options before it still decode');
    assert.equal(verifyChecksums(frame).ok, true, 'checksums stay valid so only the option is wrong');
    assert.throws(
      () =>
        buildPacket({
          ip: V4,
          tcp: { sport: 1, dport: 2, flags: 'A', options: [{ kind: 'nop' }] },
          corrupt: { badOptionLength: true },
        }),
      /needs at least one TCP option with a length byte/,
    );
  });
});

describe('parser robustness', () => {
  it('never throws on truncated, mangled or random input', () => {
    let seed = 0x2545f491;
    const rand = (): number => {
      // xorshift32: deterministic so failures reproduce.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const bases = [
      buildPacket(synV4()),
      buildPacket(dataV6()),
      buildPacket({ ip: V4, udp: { sport: 1, dport: 2 }, payload: 'xyz' }),
    ];
    for (let i = 0; i < 3000; i++) {
      const base = bases[i % bases.length] ?? Buffer.alloc(0);
      const frame = Buffer.from(base.subarray(0, Math.floor(rand() * (base.length + 1))));
      const flips = Math.floor(rand() * 4);
      for (let f = 0; f < flips && frame.length > 0; f++) {
        frame.writeUInt8(Math.floor(rand() * 256), Math.floor(rand() * frame.length));
      }
      const p = parsePacket(frame);
      assert.ok(
        p.errors.every((e) => typeof e === 'string' && !e.startsWith('internal')),
        p.errors.join(),
      );
      assert.equal(typeof verifyChecksums(frame).ok, 'boolean');
      assert.ok(diffPackets(base, frame) === null || typeof diffPackets(base, frame) === 'string');
    }
  });

  it('explains non-IP frames', () => {
    const arp = Buffer.concat([Buffer.from('ffffffffffff020000000001' + '0806', 'hex'), Buffer.alloc(28)]);
    assert.deepEqual(parsePacket(arp).errors, ['unsupported ethertype 0x0806']);
    const r = verifyChecksums(arp);
    assert.equal(r.ok, false);
    assert.deepEqual(r.errors, ['cannot verify checksums: unsupported ethertype 0x0806']);
    assert.match(parsePacket(Buffer.alloc(5)).errors.join(), /shorter than the 14-byte Ethernet header/);
  });

  it('flags an IP version that disagrees with the ethertype', () => {
    const frame = buildPacket(synV4());
    frame.writeUInt8(0x65, 14);
    assert.match(parsePacket(frame).errors.join(), /ip\.version is 6 but the ethertype says IPv4/);
    assert.equal(verifyChecksums(frame).ok, false);
  });
});

describe('diffPackets', () => {
  it('returns null for identical frames', () => {
    assert.equal(diffPackets(buildPacket(synV4()), buildPacket(synV4())), null);
  });

  it('names the differing field with decimal and hex values', () => {
    const a = buildPacket(synV4());
    const b = buildPacket(
      synV4({ tcp: { sport: 40000, dport: 80, seq: 1001, flags: 'S', window: 64240, options: LINUX_SYN_OPTIONS } }),
    );
    const diff = diffPackets(a, b) ?? '';
    assert.match(diff, /^ {2}tcp\.seq: expected 1000 \(0x3e8\) got 1001 \(0x3e9\)$/m);
    assert.match(diff, /^ {2}tcp\.checksum: expected/m);
    assert.doesNotMatch(diff, /hex dump/, 'same structure: no dump needed');
  });

  it('reports option fields, addresses, flags and payload', () => {
    const base = dataV6();
    const changed = buildPacket(
      dataV6({
        ip: { ...V6, src: '2001:db8::99', flowLabel: 0x12345 },
        tcp: {
          ...base.tcp!,
          flags: 'FA',
          options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamp', tsval: 2, tsecr: 2 }],
        },
        payload: 'hello, BATON',
      }),
    );
    const diff = diffPackets(buildPacket(base), changed) ?? '';
    assert.match(diff, /ip\.src: expected "2001:db8::1" got "2001:db8::99"/);
    assert.match(diff, /tcp\.flags: expected "PA" got "FA"/);
    assert.match(diff, /tcp\.options\[2\]\.tsval: expected 1 \(0x1\) got 2 \(0x2\)/);
    assert.match(
      diff,
      /payload: expected 12 bytes \[[0-9a-f]+\] got 12 bytes \[[0-9a-f]+\] \(first difference at offset 7\)/,
    );
  });

  it('adds a marked hex dump when the structure differs', () => {
    const a = buildPacket(synV4());
    const b = buildPacket(
      synV4({
        tcp: { sport: 40000, dport: 80, seq: 1000, flags: 'S', window: 64240, options: LINUX_SYN_OPTIONS.slice(0, 3) },
      }),
    );
    const diff = diffPackets(a, b) ?? '';
    assert.match(diff, /tcp\.options\.count: expected 5 \(0x5\) got 3 \(0x3\)/);
    assert.match(diff, /tcp\.options\[4\]\.shift: expected 7 \(0x7\) got \(absent\)/);
    assert.match(diff, /hex dump \(rows that differ; expected 74 bytes, actual 70 bytes/);
    assert.match(diff, /^ +\^\^/m);
    assert.match(diff, /-- -- -- --/, 'missing bytes are shown as --');
  });

  it('summarises a layer missing on one side in a single line', () => {
    const a = buildPacket({ ip: V4, tcp: { sport: 1, dport: 2, flags: 'A' }, payload: 'hi' });
    const b = buildPacket({
      ip: V4,
      tcp: { sport: 1, dport: 2, flags: 'A' },
      payload: 'hi',
      corrupt: { truncateTo: 14 + 20 + 10 },
    });
    const diff = diffPackets(a, b) ?? '';
    assert.match(diff, /^ {2}tcp: expected present got \(absent\)$/m);
    assert.doesNotMatch(diff, /tcp\.sport/);
    assert.match(diff, /errors: expected \(absent\) got ".*TCP header truncated: 10 bytes, need 20"/);
  });

  it('reports parse errors and checksum validity as fields', () => {
    const a = buildPacket(synV4());
    const b = buildPacket({ ...synV4(), corrupt: { l4Checksum: true, tcpDataOffset: 4 } });
    const diff = diffPackets(a, b) ?? '';
    assert.match(diff, /tcp\.dataOffset: expected 10 \(0xa\) got 4 \(0x4\)/);
    assert.match(diff, /valid\.tcp: expected "ok" got "tcp checksum .* is wrong/);
    assert.match(diff, /errors: expected \(absent\) got "tcp\.dataOffset 4/);
    assert.match(diff, /hex dump/);
  });
});
