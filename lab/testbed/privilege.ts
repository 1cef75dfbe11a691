/** Whether this process can build a testbed (Linux, root, ip and ethtool, netns creation), and if not why. */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runSync } from './exec.js';

export type Privilege = { ok: true } | { ok: false; reason: string };

/**
 * Whether this process can build a testbed, with a one-line reason if not,
 * for `test(..., { skip: priv.ok ? false : priv.reason })`.
 */
export function canRunPrivileged(): Privilege {
  if (process.platform !== 'linux') return { ok: false, reason: `needs Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces, veth, XDP)' };
  for (const [bin, pkg] of [
    ['ip', 'iproute2'],
    ['ethtool', 'ethtool'],
  ] as const) {
    try {
      execFileSync(bin, bin === 'ip' ? ['-V'] : ['--version'], { stdio: 'ignore' });
    } catch {
      return { ok: false, reason: `no \`${bin}\` binary (install ${pkg})` };
    }
  }
  // A probe name outside the bt- space, so no concurrent stale cleanup can mistake it for a testbed.
  const probe = `btprobe-${process.pid}-${randomBytes(2).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const msg = (e as { stderr?: Buffer }).stderr?.toString().trim() || String(e);
    return { ok: false, reason: `cannot create a network namespace: ${msg.split('\n')[0]}` };
  }
  runSync(['ip', 'netns', 'del', probe]);
  return { ok: true };
}
