/** Where tests find built artefacts, and why privileged tests may be skipped. */
import { resolve } from 'node:path';
import { bpfUnavailableReason } from '../../control/bpf/probe.js';
import { BPF_DIR } from '../../lab/paths.js';

export { BPF_DIR, ROOT } from '../../lab/paths.js';
export const DATAPATH_OBJ = resolve(BPF_DIR, 'xdp_baton.o');

/** false when BPF tests can run, else the one-line reason to skip them. */
export const skipUnlessBpf: string | false = bpfUnavailableReason(BPF_DIR) ?? false;
