/**
 * Who owns each connection, across a daemon restart. The pinned table keeps
 * the connections (splicer.adopt rebuilds them) but not the uid that created
 * each one, which authorization needs (control/service/authorize.ts). On a
 * graceful stop the daemon writes them to <stateDir>/owners/<map id>.json;
 * the next start reads that file and gives each adopted connection that
 * matches an entry (same id, client and VIP) its owner back.
 *
 * The file is named by the id of the pinned connection table, which the
 * kernel never gives to another map while this one exists: a file left by a
 * table that `baton down` removed never matches a new one. A connection with
 * no matching entry (the daemon was killed, the file was lost) belongs to
 * root: only privileged callers see it, never the wrong user.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatAddress } from '../net/addr.js';
import type { SpliceRecord } from '../splice/splicer.js';

const VERSION = 1;

export interface OwnerEntry {
  id: string;
  client: string;
  vip: string;
  uid: number;
}

export interface OwnersFile {
  version: number;
  mapId: number;
  owners: OwnerEntry[];
}

type Rec = Pick<SpliceRecord, 'id' | 'client' | 'vip' | 'ownerUid'>;

const entryOf = (r: Rec): OwnerEntry => ({
  id: r.id.toString(),
  client: formatAddress(r.client.ip, r.client.port),
  vip: formatAddress(r.vip.ip, r.vip.port),
  uid: r.ownerUid,
});

/** What to save: the connections root does not own (root's are the default). Pure. */
export function ownersToSave(mapId: number, records: Iterable<Rec>): OwnersFile {
  const owners: OwnerEntry[] = [];
  for (const r of records) if (r.ownerUid !== 0) owners.push(entryOf(r));
  return { version: VERSION, mapId, owners };
}

/**
 * Gives adopted records their saved owners; returns how many got one. Pure
 * but for the records it updates. A file of another table, of another
 * version, or an entry whose addresses differ changes nothing.
 */
export function restoreOwners(file: unknown, mapId: number, records: Map<bigint, Rec>): number {
  const f = file as Partial<OwnersFile> | null;
  if (!f || f.version !== VERSION || f.mapId !== mapId || !Array.isArray(f.owners)) return 0;
  let n = 0;
  for (const e of f.owners as Partial<OwnerEntry>[]) {
    if (typeof e?.id !== 'string' || !/^[0-9]{1,20}$/.test(e.id) || !Number.isInteger(e.uid) || (e.uid as number) < 0)
      continue;
    const r = records.get(BigInt(e.id));
    if (!r) continue;
    const now = entryOf(r);
    if (now.client !== e.client || now.vip !== e.vip) continue;
    r.ownerUid = e.uid as number;
    n++;
  }
  return n;
}

/** The id of a BPF map, from its descriptor's fdinfo ("map_id:"). */
export function mapIdOf(fd: number): number {
  const m = /^map_id:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`fdinfo of fd ${fd} has no map_id: not a BPF map`);
  return Number(m[1]);
}

export const ownersPath = (stateDir: string, mapId: number): string => join(stateDir, 'owners', `${mapId}.json`);

/** Writes the owners file (atomically, mode 0600); with no owners to keep, removes it. */
export function saveOwners(stateDir: string, file: OwnersFile): void {
  const path = ownersPath(stateDir, file.mapId);
  if (file.owners.length === 0) {
    rmSync(path, { force: true });
    return;
  }
  mkdirSync(join(stateDir, 'owners'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * Reads the owners file of table `mapId`; undefined when there is none or it
 * does not parse. It stays until the next graceful stop replaces it, so a
 * daemon killed after a restart still finds it: ids are never reused within
 * a table, so an entry of a connection that has gone matches nothing.
 */
export function readOwners(stateDir: string, mapId: number): unknown {
  let text: string;
  try {
    text = readFileSync(ownersPath(stateDir, mapId), 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
