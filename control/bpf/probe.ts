/**
 * Can this process use BPF at all? Answers with one line a user can act on,
 * so tests skip cleanly and the demo explains instead of failing obscurely.
 */
import { existsSync } from 'node:fs';
import { objectCandidates } from './objects.js';

/** `objectDir`: where the objects are (default: the package's build/bpf, control/bpf/objects.ts). */
export function bpfUnavailableReason(objectDir?: string): string | undefined {
  if (process.platform !== 'linux') return `BPF needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root: loading BPF programs and creating namespaces needs root (sudo)';
  if (!existsSync('/sys/kernel/btf/vmlinux'))
    return 'kernel without BTF (/sys/kernel/btf/vmlinux missing): baton needs CONFIG_DEBUG_INFO_BTF';
  const candidates = objectCandidates('datapath', { dir: objectDir });
  if (!candidates.some((p) => existsSync(p)))
    return `datapath not built (${candidates.join(', ') || 'xdp_baton.o'} missing): run make bpf`;
  return undefined;
}
