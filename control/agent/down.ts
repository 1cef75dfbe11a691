/**
 * `baton agent down`: removes what `baton agent` leaves behind on a back end
 * when it stops (SIGTERM keeps these on purpose, so migrated connections
 * keep their flow-id restore): the XDP links pinned under its --pin-dir
 * (detached: migrated connections still served on this host stop getting
 * their segments restored, so their clients see them stall or reset), its
 * pinned maps, the pin directory when empty, and the app socket file (and
 * its directory when empty). Idempotent: a second run finds nothing.
 * Refuses while an agent still answers on the app socket.
 */
import { existsSync, lstatSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BpfError, XdpLink } from '../bpf/index.js';
import { AGENT_LINK_PIN, AGENT_MAP_PIN } from '../datapath/agent-datapath.js';
import { BatonError } from '../errors.js';
import { closeFd, connectUnix } from '../sys/scm-rights.js';

export interface AgentTeardown {
  pinDir: string;
  appSocket: string;
  /** ifindexes whose pinned XDP link was detached */
  detached: number[];
  /** pinned maps removed (file names under pinDir) */
  unpinned: string[];
  /** files and directories removed besides the pins (the app socket, empty directories) */
  removed: string[];
}

/** Directories never removed even when empty: they are the system's, not the agent's. */
const KEEP_DIRS = new Set(['/', '/run', '/var/run', '/tmp', '/var/tmp', '/sys/fs/bpf']);

/** True when a process accepts connections on the unix socket at `path` (a running agent). */
function answers(path: string): boolean {
  try {
    closeFd(connectUnix(path));
    return true;
  } catch {
    return false; // ECONNREFUSED: a stale file of a stopped agent; ENOENT: none
  }
}

function rmdirIfEmpty(dir: string, removed: string[]): void {
  if (KEEP_DIRS.has(dir)) return;
  try {
    rmdirSync(dir);
    removed.push(dir);
  } catch {
    /* not empty (someone else's files), absent, or not ours to remove */
  }
}

export function teardownAgent(cfg: { pinDir: string; appSocket: string }): AgentTeardown {
  const out: AgentTeardown = { ...cfg, detached: [], unpinned: [], removed: [] };
  if (answers(cfg.appSocket))
    throw new BatonError(
      'AGENT_RUNNING',
      `a baton agent is running here (it answers on ${cfg.appSocket}): stop it first (SIGTERM; connections already handed to apps keep working), then run baton agent down`,
      'agent_running',
    );
  if (existsSync(cfg.pinDir)) {
    for (const name of readdirSync(cfg.pinDir)) {
      const m = AGENT_LINK_PIN.exec(name);
      if (!m) continue;
      const path = join(cfg.pinDir, name);
      const link = XdpLink.openPinned(path, Number(m[1]));
      try {
        link.detach();
      } catch (e) {
        // Already defunct (its interface is gone): removing the pin is all that is left.
        if (!(e instanceof BpfError)) throw e;
      }
      rmSync(path, { force: true });
      out.detached.push(Number(m[1]));
    }
    for (const name of readdirSync(cfg.pinDir)) {
      if (!AGENT_MAP_PIN.test(name)) continue;
      rmSync(join(cfg.pinDir, name), { force: true });
      out.unpinned.push(name);
    }
    rmdirIfEmpty(cfg.pinDir, out.removed);
  }
  let isSocket = false;
  try {
    isSocket = lstatSync(cfg.appSocket).isSocket();
  } catch {
    /* absent */
  }
  // A cleanly stopped agent has unlinked its socket already; one that was killed leaves it behind.
  if (isSocket) {
    rmSync(cfg.appSocket, { force: true });
    out.removed.push(cfg.appSocket);
  }
  rmdirIfEmpty(dirname(cfg.appSocket), out.removed);
  return out;
}

/** The report of teardownAgent, one line per thing (pure). */
export function describeTeardown(r: AgentTeardown): string {
  if (r.detached.length + r.unpinned.length + r.removed.length === 0)
    return `nothing to remove: no agent pins under ${r.pinDir}, no app socket at ${r.appSocket}`;
  const lines = [
    `baton agent removed from ${r.pinDir}: XDP detached from ifindex ${r.detached.join(', ') || '(none)'}; ${r.unpinned.length} pinned map(s) removed`,
  ];
  for (const p of r.removed) lines.push(`  removed ${p}`);
  return lines.join('\n');
}
