/**
 * Who may do what through the API: the one place that decides.
 *
 * A caller is either a local process on the unix socket, known by its peer
 * credentials (SO_PEERCRED), or the operator on a TCP listener, known by the
 * bearer token (the token is the operator's credential, so a token holder is
 * root-equivalent; so is anyone on a TCP listener started with
 * --insecure-no-auth).
 *
 * Rules (docs/api.md, "Authorization"):
 *  1. Naming descriptors (POST /v1/splices, each item of :batch): a caller may
 *     name only processes it could ptrace itself. Privileged callers (uid 0,
 *     CAP_SYS_PTRACE in the effective set, or the operator) may name any.
 *     Others only a process whose real, effective and saved uids all equal
 *     the caller's uid and whose real, effective and saved gids all equal the
 *     caller's gid, and that is dumpable: the uid/gid rule of the kernel's
 *     ptrace_may_access(). Checked before any descriptor is taken.
 *  2. Connections: each splice remembers the uid that created it (ownerUid;
 *     0 for the operator). A caller lists, shows, hands off and aborts only
 *     connections of its own uid; privileged callers all of them.
 *  3. The whole LB (drain, POST/DELETE /v1/drain): privileged callers only.
 *     Reading the LB's state (GET /v1/cluster, GET /v1/drain: counts and
 *     peers' addresses, no connection of anyone) is open to every caller.
 *
 * The decisions are pure functions of the caller and of what /proc says; the
 * Authorizer reads /proc (through an injectable ProcSource) and applies them.
 */
import { readFileSync, statSync } from 'node:fs';
import { BatonError } from '../errors.js';
import type { PeerCred } from '../sys/peercred.js';

/** capability.h */
export const CAP_SYS_PTRACE = 19;

export type Caller =
  | {
      kind: 'peer';
      pid: number;
      uid: number;
      gid: number;
      /** uid 0, or CAP_SYS_PTRACE in the caller's effective set when it connected. */
      privileged: boolean;
    }
  | { kind: 'operator'; via: 'token' | 'insecure-no-auth' };

/** The operator (a token holder), for callers inside the daemon and tests. */
export const OPERATOR: Caller = { kind: 'operator', via: 'token' };

/** What /proc/<pid>/status says about a process's credentials. */
export interface ProcCreds {
  /** real, effective, saved, filesystem */
  uids: [number, number, number, number];
  gids: [number, number, number, number];
  /** CapEff bits */
  capEff: bigint;
}

/** /proc/<pid>/status text -> credentials; undefined when a line is missing or malformed. */
export function parseProcStatus(text: string): ProcCreds | undefined {
  const ids = (name: string): [number, number, number, number] | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s*$`, 'm').exec(text);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] : undefined;
  };
  const uids = ids('Uid');
  const gids = ids('Gid');
  const cap = /^CapEff:\s+([0-9a-fA-F]{1,16})\s*$/m.exec(text);
  if (!uids || !gids || !cap) return undefined;
  return { uids, gids, capEff: BigInt(`0x${cap[1]}`) };
}

export const hasCap = (capEff: bigint, cap: number): boolean => ((capEff >> BigInt(cap)) & 1n) === 1n;

/**
 * A unix-socket peer as a Caller. `status` is /proc/<cred.pid>/status read
 * when the connection was first used (undefined when it could not be read:
 * the caller exited). CAP_SYS_PTRACE counts only while that process still
 * has the peer's effective uid, so a pid reused by another user's process
 * lends the caller nothing.
 */
export function peerCaller(cred: PeerCred, status: ProcCreds | undefined): Caller {
  const capable = status !== undefined && status.uids[1] === cred.uid && hasCap(status.capEff, CAP_SYS_PTRACE);
  return { kind: 'peer', pid: cred.pid, uid: cred.uid, gid: cred.gid, privileged: cred.uid === 0 || capable };
}

/** Sees and may act on everything: the operator, root, CAP_SYS_PTRACE. */
export const isPrivileged = (c: Caller): boolean => c.kind === 'operator' || c.privileged;

/** The uid a splice made by this caller belongs to (the operator's are root's). */
export const ownerUidOf = (c: Caller): number => (c.kind === 'peer' ? c.uid : 0);

const describe = (c: Caller): string => (c.kind === 'peer' ? `uid ${c.uid}` : 'the operator');

export interface TargetProcess {
  pid: number;
  /** undefined: the process does not exist (or exited while being looked at). */
  creds: ProcCreds | undefined;
  /** Owner of /proc/<pid>/status: the process's euid while it is dumpable, root once it is not. */
  procDirUid?: number;
}

/**
 * Rule 1: may `caller` name descriptors of `target`? Undefined when it may,
 * else the error to answer (FORBIDDEN_PROCESS, or SOCKET_NOT_FOUND for a
 * process that does not exist).
 */
export function processDecision(caller: Caller, target: TargetProcess): BatonError | undefined {
  if (isPrivileged(caller)) return undefined;
  const { pid, creds } = target;
  if (!creds)
    return new BatonError('SOCKET_NOT_FOUND', `no process with pid ${pid} exists (it may have exited)`, 'no_process');
  const { uid, gid } = caller as Extract<Caller, { kind: 'peer' }>;
  const [ruid, euid, suid] = creds.uids;
  const [rgid, egid, sgid] = creds.gids;
  if (ruid !== uid || euid !== uid || suid !== uid) {
    const theirs = ruid === euid && euid === suid ? `uid ${ruid}` : `uids ${ruid}/${euid}/${suid}`;
    return new BatonError(
      'FORBIDDEN_PROCESS',
      `you (uid ${uid}) may not use the sockets of pid ${pid} (${theirs}): a caller may only name processes it could ptrace, same uid or root/CAP_SYS_PTRACE`,
      'other_uid',
    );
  }
  if (rgid !== gid || egid !== gid || sgid !== gid) {
    return new BatonError(
      'FORBIDDEN_PROCESS',
      `you (uid ${uid}, gid ${gid}) may not use the sockets of pid ${pid} (gids ${rgid}/${egid}/${sgid}): a caller may only name processes it could ptrace, same uid and gid or root/CAP_SYS_PTRACE`,
      'other_gid',
    );
  }
  if (target.procDirUid !== undefined && target.procDirUid !== uid) {
    return new BatonError(
      'FORBIDDEN_PROCESS',
      `you (uid ${uid}) may not use the sockets of pid ${pid}: it is not dumpable (it changed credentials or set PR_SET_DUMPABLE 0), so you could not ptrace it either; only root/CAP_SYS_PTRACE may`,
      'not_dumpable',
    );
  }
  return undefined;
}

/** Rule 2, listing: whether `caller` sees a connection owned by `ownerUid`. */
export const seesConnection = (caller: Caller, ownerUid: number): boolean =>
  isPrivileged(caller) || ownerUidOf(caller) === ownerUid;

/**
 * Rule 2: may `caller` show, hand off or abort connection `id`? Another
 * uid's connection is 403 FORBIDDEN_CONNECTION; the answer says no more about
 * it (not its owner, not its addresses).
 */
export function connectionDecision(caller: Caller, id: bigint, ownerUid: number): BatonError | undefined {
  if (seesConnection(caller, ownerUid)) return undefined;
  return new BatonError(
    'FORBIDDEN_CONNECTION',
    `connection ${id} is not yours: a caller may see, hand off or abort only the connections its uid created (you are ${describe(caller)}; root/CAP_SYS_PTRACE and token holders: all)`,
    'other_owner',
  );
}

/**
 * Rule 3: may `caller` change the state of the whole LB (`what`, e.g.
 * "drain this LB")? Undefined when it may, else 403 FORBIDDEN_OPERATION.
 */
export function operationDecision(caller: Caller, what: string): BatonError | undefined {
  if (isPrivileged(caller)) return undefined;
  return new BatonError(
    'FORBIDDEN_OPERATION',
    `you (${describe(caller)}) may not ${what}: it changes the whole LB, so only the operator (a token holder) or root/CAP_SYS_PTRACE on the unix socket may`,
    'not_operator',
  );
}

/** Where the Authorizer reads process credentials; tests stand in their own. */
export interface ProcSource {
  status(pid: number): ProcCreds | undefined;
  /** Owner uid of /proc/<pid>/status (root once the process is not dumpable), undefined when it cannot be read. */
  procDirUid(pid: number): number | undefined;
}

export const procfs: ProcSource = {
  status(pid) {
    try {
      return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'latin1'));
    } catch {
      return undefined;
    }
  },
  procDirUid(pid) {
    try {
      // The files inside /proc/<pid>, not the directory: on some kernels
      // (6.18 here) the directory keeps the euid of a process that is not
      // dumpable, while its files turn root's as ptrace_may_access() rules.
      return statSync(`/proc/${pid}/status`).uid;
    } catch {
      return undefined;
    }
  },
};

/** Applies the rules with credentials read from a ProcSource. */
export class Authorizer {
  constructor(private readonly proc: ProcSource = procfs) {}

  /** A unix-socket peer as a Caller (reads its capabilities once). */
  peer(cred: PeerCred): Caller {
    return peerCaller(cred, cred.uid === 0 ? undefined : this.proc.status(cred.pid));
  }

  /**
   * Rule 1 for `pid`; throws the refusal. Call it after the pidfd is open
   * and before any descriptor is taken, then check the pidfd is still alive
   * (control/service/sockets.ts does both).
   */
  checkProcess(caller: Caller, pid: number): void {
    if (isPrivileged(caller)) return;
    const creds = this.proc.status(pid);
    const refusal = processDecision(caller, {
      pid,
      creds,
      ...(creds ? { procDirUid: this.proc.procDirUid(pid) } : {}),
    });
    if (refusal) throw refusal;
  }

  /**
   * Rule 1 for descriptors a caller passed itself (the handoff channel's
   * SCM_RIGHTS): they are its own, so it is ruled on its own process, as
   * REST rules a request that names the caller's own pid.
   */
  checkPassedBy(caller: Caller): void {
    if (caller.kind === 'peer') this.checkProcess(caller, caller.pid);
  }
}
