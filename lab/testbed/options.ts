/** The options createTestbed takes, and the XDP pass program it attaches by default. */
import { resolve } from 'node:path';
import { BPF_DIR } from '../paths.js';

export const DEFAULT_XDP_PASS_OBJ = resolve(BPF_DIR, 'xdp_pass.o');

export interface TestbedOptions {
  /** `bt-<id>`; default `bt-<6 random hex>` */
  prefix?: string;
  /** decide per interface whether xdp_pass is attached (default: NodeSpec.passXdp ?? true) */
  passXdp?: (node: string, iface: string, role: string | undefined) => boolean;
  /** compute routes from the graph (default true) */
  autoRoutes?: boolean;
  /** remove stale namespaces of dead runs first (default true) */
  cleanStale?: boolean;
  /** path of the pass program; default <repo>/build/bpf/xdp_pass.o */
  xdpPassObj?: string;
  /**
   * Survive the creating process: no exit handlers, and the owner marker says
   * "persistent" so stale cleanup leaves it alone. Used by `scripts/testbed up`;
   * remove with `scripts/testbed down <prefix>`.
   */
  persistent?: boolean;
}
