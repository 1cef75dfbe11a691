/**
 * The API's unix socket on disk: who can reach it is the first line of
 * authorization (callers on it are then known by SO_PEERCRED).
 *
 *   directory: created with mode 0750, owner the daemon (root), group --api-group, when
 *              missing; an existing directory is left as it is unless it is
 *              one baton made (the daemon's, mode 0750), whose group follows the
 *              setting;
 *   socket:    created under umask 0177 (no one but root can connect while it
 *              is being set up), then chown <daemon>:<group> and chmod 0660.
 *
 * Without --api-group the group is root's: only root can call the API.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { BatonError } from '../errors.js';

export const API_DIR_MODE = 0o750;
export const API_SOCKET_MODE = 0o660;
/** While the socket is created: owner only (0600). */
const LISTEN_UMASK = 0o177;
/** The daemon's own uid (root in practice): owner of the directory and the socket. */
const selfUid = (): number => process.getuid?.() ?? 0;

/** /etc/group text -> gid of `name`, or undefined (pure). */
export function gidInGroupFile(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/** A group name (from /etc/group) or a numeric gid -> gid. */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^[0-9]+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    /* no group file: only numeric gids work */
  }
  const gid = gidInGroupFile(text, group);
  if (gid === undefined) {
    throw new BatonError(
      'CONFIG_INVALID',
      `--api-group: no group named ${JSON.stringify(group)} in ${groupFile}: create it (groupadd ${group}) or give a numeric gid`,
      'unknown_group',
    );
  }
  return gid;
}

/** Creates the socket's directory (0750, root:gid) when missing. Call before anything else creates it. */
export function prepareApiDir(socketPath: string, gid: number): void {
  const dir = dirname(socketPath);
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (!st) {
    mkdirSync(dir, { recursive: true, mode: API_DIR_MODE });
    chownSync(dir, selfUid(), gid);
    chmodSync(dir, API_DIR_MODE); // mkdir's mode went through the umask
    return;
  }
  if (!st.isDirectory()) throw new BatonError('CONFIG_INVALID', `--api: ${dir} is not a directory`, 'bad_socket_dir');
  if (st.uid === selfUid() && (st.mode & 0o7777) === API_DIR_MODE && st.gid !== gid) chownSync(dir, selfUid(), gid);
}

/** Removes a stale socket of a killed daemon; refuses to remove anything that is not a socket. */
export function removeStaleSocket(socketPath: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new BatonError(
      'CONFIG_INVALID',
      `--api: ${socketPath} exists and is not a socket; choose another path (baton removes only stale sockets)`,
      'not_a_socket',
    );
  rmSync(socketPath, { force: true });
}

/** Creates the socket with `listen` under a tight umask, then gives it to root:gid with mode 0660. */
export async function listenOnSocket(socketPath: string, gid: number, listen: () => Promise<unknown>): Promise<void> {
  removeStaleSocket(socketPath);
  const umask = process.umask(LISTEN_UMASK);
  try {
    await listen();
  } finally {
    process.umask(umask);
  }
  chownSync(socketPath, selfUid(), gid);
  chmodSync(socketPath, API_SOCKET_MODE);
}
