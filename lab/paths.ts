/** Where the lab finds the repository and the built BPF objects (`make bpf` puts them in build/bpf). */
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
export const BPF_DIR = resolve(ROOT, 'build/bpf');
