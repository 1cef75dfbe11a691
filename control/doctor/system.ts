/**
 * What the doctor reads from the host: sysctls (procfs of the namespace the
 * process runs in), `ip -j -d link`, `ethtool -k`, file system types.
 * Each helper returns undefined instead of throwing when the thing is
 * missing, so a check can say what is missing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';

/** "net.ipv4.conf.all.rp_filter" -> its value, or undefined when the sysctl does not exist here. */
export function sysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function sysctlInt(name: string): number | undefined {
  const v = sysctl(name);
  return v === undefined || v === '' ? undefined : Number(v.split(/\s+/)[0]);
}

/** stdout of a command, or undefined if it is missing or fails. */
export function command(file: string, args: string[]): string | undefined {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return undefined;
  }
}

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  operstate?: string;
  flags?: string[];
  /** mode 1 native (driver), 2 generic (skb), 3 offloaded, 4 several */
  xdp?: {
    mode: number;
    prog?: { id: number; name: string };
    attached?: { mode: number; prog?: { id: number; name: string } }[];
  };
  linkinfo?: { info_kind?: string };
}

export function link(dev: string): LinkInfo | undefined {
  const out = command('ip', ['-j', '-d', 'link', 'show', 'dev', dev]);
  if (!out) return undefined;
  try {
    return (JSON.parse(out) as LinkInfo[])[0];
  } catch {
    return undefined;
  }
}

/** `ethtool -k dev` as feature -> "on" | "off" (the "[fixed]" marker kept separately). */
export function ethtoolFeatures(dev: string): Map<string, { on: boolean; fixed: boolean }> | undefined {
  const out = command('ethtool', ['-k', dev]);
  if (!out) return undefined;
  const features = new Map<string, { on: boolean; fixed: boolean }>();
  for (const line of out.split('\n')) {
    const m = /^\s*([a-z0-9-]+):\s+(on|off)(\s+\[fixed\])?/.exec(line);
    if (m?.[1]) features.set(m[1], { on: m[2] === 'on', fixed: Boolean(m[3]) });
  }
  return features;
}

/** BPF_FS_MAGIC from linux/magic.h */
const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * Whether `path` is (or, if it does not exist yet, would be created) on a
 * bpffs: the nearest existing ancestor's file system type decides.
 */
export function bpffsAt(path: string): { bpffs: boolean; checked: string; exists: boolean } {
  let p = path;
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  let type = 0;
  try {
    type = Number(statfsSync(p).type);
  } catch {
    /* unreadable: not a bpffs we can use */
  }
  return { bpffs: type === BPF_FS_MAGIC, checked: p, exists: p === path };
}

/** Effective capabilities of this process (CapEff in /proc/self/status). */
export function effectiveCaps(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** "6.18.0-1-amd64" -> [6, 18] */
export function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}
