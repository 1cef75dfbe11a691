/**
 * Host checks: kernel, BTF, bpffs, privileges, libbpf and baton's BPF objects.
 * Modules that load libbpf (through koffi) are imported lazily, so a host
 * without libbpf still gets every other answer.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { BPF_OBJECTS, missingObjectHint, type ObjectLocation, objectCandidates } from '../bpf/objects.js';
import { bad, type Check, ok } from './check.js';
import { bpffsAt, effectiveCaps, kernelVersion } from './system.js';

/** The oldest kernel baton runs on: its control program is BPF_PROG_TYPE_SYSCALL (5.14). */
const MIN_KERNEL: [number, number] = [5, 14];

export function checkKernel(): Check {
  const r = release();
  const [maj, min] = kernelVersion(r);
  if (maj < MIN_KERNEL[0] || (maj === MIN_KERNEL[0] && min < MIN_KERNEL[1])) {
    return bad(
      'kernel',
      'fail',
      `Linux ${r}`,
      `baton needs Linux ${MIN_KERNEL.join('.')}+ (syscall BPF programs, pidfd_getfd, bpf iterators); upgrade the kernel`,
    );
  }
  return ok('kernel', `Linux ${r}`);
}

export function checkBtf(): Check {
  if (existsSync('/sys/kernel/btf/vmlinux')) return ok('btf', '/sys/kernel/btf/vmlinux present (CO-RE programs load)');
  return bad(
    'btf',
    'fail',
    '/sys/kernel/btf/vmlinux missing',
    'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution kernel has it)',
  );
}

export function checkBpffs(pinDir: string): Check {
  const b = bpffsAt(pinDir);
  if (b.bpffs)
    return ok('bpffs', b.exists ? `${pinDir} is on bpffs` : `${b.checked} is bpffs (${pinDir} will be created there)`);
  return bad(
    'bpffs',
    'fail',
    `${b.checked} is not a bpffs, so ${pinDir} cannot hold pinned maps and links (without them a daemon restart drops every spliced connection)`,
    'mount -t bpf bpf /sys/fs/bpf (add it to /etc/fstab: "bpf /sys/fs/bpf bpf defaults 0 0"); under `ip netns exec`, mount it inside: /sys is remounted there',
  );
}

const CAP = { NET_ADMIN: 12n, SYS_PTRACE: 19n, SYS_ADMIN: 21n, PERFMON: 38n, BPF: 39n } as const;

/** The LB needs all four; the agent (migrate mode's back end) neither iterators nor other processes' sockets. */
export function checkPrivileges(role: 'lb' | 'agent' = 'lb'): Check {
  const caps = effectiveCaps();
  const has = (c: bigint) => (caps & (1n << c)) !== 0n;
  const lb = role === 'lb';
  const missing = [
    !has(CAP.NET_ADMIN) && `CAP_NET_ADMIN (XDP attach, TCP_REPAIR${lb ? '' : ', IP_TRANSPARENT'})`,
    !has(CAP.BPF) && !has(CAP.SYS_ADMIN) && 'CAP_BPF (load programs, create maps)',
    lb && !has(CAP.PERFMON) && !has(CAP.SYS_ADMIN) && 'CAP_PERFMON (tracing-type iterator program)',
    lb && !has(CAP.SYS_PTRACE) && "CAP_SYS_PTRACE (pidfd_getfd of a front end's sockets)",
  ].filter(Boolean) as string[];
  const who = process.getuid?.() === 0 ? 'root' : `uid ${process.getuid?.()}`;
  if (missing.length === 0)
    return ok('privileges', `${who}, with CAP_NET_ADMIN, CAP_BPF${lb ? ', CAP_PERFMON, CAP_SYS_PTRACE' : ''}`);
  return bad(
    'privileges',
    'fail',
    `${who} lacks ${missing.join(', ')}`,
    'run baton as root, or grant these capabilities (e.g. systemd AmbientCapabilities=)',
  );
}

/** Loads the binding (which dlopens libbpf.so.1) and reads the version from the mapped file's name. */
export async function checkLibbpf(): Promise<Check> {
  try {
    await import('../bpf/ffi.js');
  } catch (e) {
    return bad(
      'libbpf',
      'fail',
      `the libbpf binding did not load: ${(e as Error).message.split('\n')[0]}`,
      'install libbpf (Debian/Ubuntu: apt-get install libbpf1 libbpf-dev; scripts/setup does it)',
    );
  }
  const mapped = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .find((l) => /\/libbpf\.so/.test(l));
  const path = mapped?.slice(mapped.indexOf('/'));
  let version = 'version unknown';
  if (path) {
    const m = /libbpf\.so\.(\d+\.\d+\.\d+)/.exec(realpathSync(path));
    if (m) version = `libbpf ${m[1]}`;
  }
  return ok('libbpf', `${version}${path ? ` (${path})` : ''}`);
}

/** The objects the daemon loads, found as it finds them (control/bpf/objects.ts), with the same overrides. */
export function checkObjects(
  where: Partial<Record<'datapath' | 'probe' | 'agent', ObjectLocation>> = {},
  roles: readonly ('datapath' | 'probe' | 'agent')[] = ['datapath', 'probe'],
): Check {
  const found: string[] = [];
  const missing: string[] = [];
  for (const role of roles) {
    const candidates = objectCandidates(role, where[role]);
    const hit = candidates.find((p) => existsSync(p));
    if (hit) found.push(hit);
    else
      missing.push(
        `${BPF_OBJECTS[role]}.o (looked at ${candidates.join(', ') || 'nothing: no baton package root above the CLI'})`,
      );
  }
  if (missing.length === 0) return ok('objects', found.join(', '));
  return bad(
    'objects',
    'fail',
    `missing: ${missing.join('; ')}`,
    `${missingObjectHint(roles[0] ?? 'datapath')}; make bpf needs clang, libbpf-dev, bpftool (scripts/setup)`,
  );
}
