/**
 * RedisStore's reply shapes (RESP2, bulk strings as Buffers): checked, not
 * assumed; a reply of the wrong shape is STORE_UNAVAILABLE, not a crash.
 */
import { BatonError } from '../errors.js';
import type { DirectoryChange, DirectoryEntry, LivePeer, PeerChange } from './store.js';
// ---------------------------------------------------------------------------
// Reply shapes (RESP2 with bulk strings as Buffers): checked, not assumed.

export type Reply = Buffer | number | null | Reply[];

export function bad(what: string, got: unknown): BatonError {
  return new BatonError(
    'STORE_UNAVAILABLE',
    `the store answered ${what} with an unexpected shape (${JSON.stringify(got)?.slice(0, 120)}); is it Redis 7 or later?`,
    'bad_reply',
  );
}
export function arr(x: unknown, what: string): Reply[] {
  if (!Array.isArray(x)) throw bad(what, x);
  return x as Reply[];
}
export function buf(x: unknown, what: string): Buffer {
  if (Buffer.isBuffer(x)) return x;
  throw bad(what, x);
}
export function int(x: unknown, what: string): number {
  if (typeof x === 'number') return x;
  if (Buffer.isBuffer(x) && /^-?\d+$/.test(x.toString())) return Number(x.toString());
  throw bad(what, x);
}
export function str(x: unknown, what: string): string {
  return buf(x, what).toString('utf8');
}

/** One stream entry: [id, [field, value, ...]] -> seq and fields. */
export function streamEntry(x: unknown): { seq: number; fields: Buffer[] } {
  const [id, fields] = arr(x, 'XREAD');
  const m = /^(\d+)-0$/.exec(str(id, 'XREAD id'));
  if (!m) throw bad('XREAD id', id);
  return { seq: Number(m[1]), fields: arr(fields, 'XREAD fields').map((f) => buf(f, 'XREAD field')) };
}

export function dirChange(seq: number, f: Buffer[]): DirectoryChange {
  const op = f[1]?.toString();
  if (f[0]?.toString() !== 'op' || (op !== 'publish' && op !== 'withdraw') || f[2]?.toString() !== 'owner') {
    throw bad('a directory change', f.map(String));
  }
  const entries: { ref: string; value: Buffer }[] = [];
  for (let i = 4; i + 1 < f.length; i += 2) entries.push({ ref: String(f[i]), value: f[i + 1] as Buffer });
  return { seq, op, owner: String(f[3]), entries };
}

export function peerChange(seq: number, f: Buffer[]): PeerChange {
  const kv = new Map<string, Buffer>();
  for (let i = 0; i + 1 < f.length; i += 2) kv.set(String(f[i]), f[i + 1] as Buffer);
  const id = kv.get('id')?.toString();
  const type = kv.get('type')?.toString();
  if (!id) throw bad('a peer change', f.map(String));
  if (type === 'join') return { seq, type, peer: { id, info: kv.get('info') ?? Buffer.alloc(0) } };
  const reason = kv.get('reason')?.toString();
  if (type === 'leave' && (reason === 'expired' || reason === 'removed')) return { seq, type, id, reason };
  throw bad('a peer change', f.map(String));
}

/** The dirSnapshot script's reply: [seq, epoch, [ref, owner "\n" value, ...]]. */
export function decodeDirSnapshot(reply: Reply): { seq: number; epoch: string; entries: DirectoryEntry[] } {
  const [seq, epoch, flat] = arr(reply, 'snapshot');
  const entries: DirectoryEntry[] = [];
  const f = arr(flat, 'snapshot entries');
  for (let i = 0; i + 1 < f.length; i += 2) {
    const v = buf(f[i + 1], 'entry');
    const nl = v.indexOf(0x0a);
    if (nl < 1) throw bad('a directory entry', v.toString());
    entries.push({
      ref: str(f[i], 'ref'),
      owner: v.subarray(0, nl).toString(),
      value: Buffer.from(v.subarray(nl + 1)),
    });
  }
  return { seq: int(seq, 'seq'), epoch: str(epoch, 'epoch'), entries };
}

/** The peerSnapshot script's reply: [seq, epoch, server now, [id, expiry, ...], [info, ...]]. */
export function decodePeerSnapshot(reply: Reply): { seq: number; epoch: string; peers: LivePeer[] } {
  const [seq, epoch, now, live, infos] = arr(reply, 'peer snapshot');
  const l = arr(live, 'peers');
  const inf = arr(infos, 'peer infos');
  const t = int(now, 'now');
  const peers: LivePeer[] = [];
  for (let i = 0; i + 1 < l.length; i += 2) {
    peers.push({
      id: str(l[i], 'peer id'),
      info: Buffer.from(buf(inf[i / 2], 'peer info')),
      expiresInMs: Number(str(l[i + 1], 'expiry')) - t,
    });
  }
  return { seq: int(seq, 'seq'), epoch: str(epoch, 'epoch'), peers };
}
