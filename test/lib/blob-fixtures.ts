/** Realistic connection states for the state-blob tests, IPv4 and IPv6. */
import type { StateBlob } from '../../control/tcp/blob/index.js';

/** A migrated HTTP connection as the LB captures it: IPv4, timestamps, SACK, wscale, a request already read. */
export function migrateV4(): StateBlob {
  return {
    migrationId: 0x0102030405060708n,
    createdAtMs: 1_760_000_000_123,
    app: { protocol: 'http/1.1' },
    tcp: {
      family: 4,
      local: { ip: '198.19.0.1', port: 80 },
      remote: { ip: '198.18.1.1', port: 40000 },
      sndNxt: 1_000_010,
      sndUna: 1_000_000,
      rcvNxt: 0xfffffff0,
      mssClamp: 1460,
      advMss: 1460,
      sndWscale: 7,
      rcvWscale: 9,
      timestamps: true,
      sackPermitted: true,
      tsNow: 123_456_789,
      usecTs: false,
      tsRecent: 987_654_321,
      sendQueue: Buffer.from('HTTP/1.1 1'),
      recvQueue: Buffer.alloc(0),
      window: { sndWl1: 0xffffffe0, sndWnd: 64_240, maxWindow: 64_240, rcvWnd: 65_535, rcvWup: 0xfffffff0 },
    },
    receivedData: Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'),
    ip: { tos: 0x10, ttl: 64 },
    flow: {
      lb: '198.18.0.2',
      flowId: 0xdeadbeef,
      client: { ip: '198.18.1.1', port: 40000 },
      vip: { ip: '198.19.0.1', port: 80 },
    },
  };
}

/** A takeover checkpoint over IPv6: no timestamps, no SACK, no scaling, an object in flight, app state. */
export function takeoverV6(): StateBlob {
  return {
    migrationId: 0xffffffffffffffffn,
    createdAtMs: 0,
    app: {
      protocol: 'ftp-data',
      state: Buffer.from('{"cwd":"/pub"}'),
      object: { id: Buffer.from('/pub/file.iso'), firstByteSeq: 0x7fff0000 },
    },
    tcp: {
      family: 6,
      local: { ip: '2001:db8::1', port: 20 },
      remote: { ip: '2001:db8:0:1::2', port: 65535 },
      sndNxt: 5,
      sndUna: 0xfffffffd,
      rcvNxt: 1,
      mssClamp: 1220,
      advMss: 1440,
      sndWscale: 0,
      rcvWscale: 0,
      timestamps: false,
      sackPermitted: false,
      tsNow: 0,
      sendQueue: Buffer.from('12345678'),
      recvQueue: Buffer.from('QUIT\r\n'),
      window: { sndWl1: 1, sndWnd: 0, maxWindow: 65_535, rcvWnd: 29_200, rcvWup: 1 },
    },
    receivedData: Buffer.alloc(0),
  };
}

/** A socket on a usec_ts route (Linux 6.7+) with large queues: 3 MiB to send, 1 MiB received. */
export function bulkUsecV4(): StateBlob {
  const s = migrateV4();
  const send = Buffer.alloc(3 << 20);
  for (let i = 0; i < send.length; i += 4096) send.writeUInt32BE(i, i);
  return {
    ...s,
    app: {},
    tcp: {
      ...s.tcp,
      usecTs: true,
      tsNow: 0x12345679,
      sendQueue: send,
      sndNxt: (s.tcp.sndUna + (2 << 20)) >>> 0,
      recvQueue: Buffer.alloc(1 << 20, 0xab),
    },
    receivedData: Buffer.alloc(0),
  };
}
