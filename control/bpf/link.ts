/**
 * Attaching programs: XDP as a bpf_link (pinnable, so the attachment
 * outlives the daemon; updatable in place, so an upgrade swaps the program
 * without a window where packets miss it) and TC clsact ingress/egress.
 */
import { existsSync, rmSync } from 'node:fs';
import { errno as errnoOf } from '../sys/errno.js';
import { BpfError } from './errors.js';
import { bpf } from './ffi.js';
import type { LinkHandle } from './handles.js';
import { newOpts, off, TC_HOOK, TC_OPTS } from './libbpf-structs.js';
import type { BpfProgram } from './object.js';

export class XdpLink {
  private destroyed = false;
  private constructor(
    private readonly handle: LinkHandle,
    readonly ifindex: number,
  ) {}

  static attach(prog: BpfProgram, ifindex: number): XdpLink {
    const link = bpf.attach_xdp(prog.handle, ifindex);
    if (!link) throw new BpfError('attach_xdp', errnoOf(), `of ${prog.name} to ifindex ${ifindex}`);
    return new XdpLink(link, ifindex);
  }

  /** Re-opens a link pinned by an earlier process. */
  static openPinned(path: string, ifindex = 0): XdpLink {
    const link = bpf.link_open(path);
    if (!link) throw new BpfError('link_open', errnoOf(), `of ${path}`);
    return new XdpLink(link, ifindex);
  }

  get fd(): number {
    return bpf.link_fd(this.handle);
  }

  pin(path: string): void {
    const rc = bpf.link_pin(this.handle, path);
    if (rc < 0) throw new BpfError('pin', -rc, `of link at ${path}`);
  }

  unpin(): void {
    const rc = bpf.link_unpin(this.handle);
    if (rc < 0) throw new BpfError('unpin', -rc, 'of link');
  }

  /** Atomically replaces the attached program. */
  update(prog: BpfProgram): void {
    const rc = bpf.link_update_program(this.handle, prog.handle);
    if (rc < 0) throw new BpfError('link_update', -rc, `to ${prog.name}`);
  }

  /** Detaches the program from the interface and frees the link. */
  detach(): void {
    if (this.destroyed) return;
    const rc = bpf.link_detach(this.handle);
    this.destroyed = true;
    bpf.link_destroy(this.handle);
    if (rc < 0) throw new BpfError('link_detach', -rc, `on ifindex ${this.ifindex}`);
  }

  /** Frees our handle but leaves the attachment (kept alive by its pin). */
  release(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    bpf.link_disconnect(this.handle);
    bpf.link_destroy(this.handle);
  }
}

/**
 * The XDP attachment of a daemon that restarts without detaching: when an
 * earlier process left its link pinned at `pinPath`, that link is switched
 * to `prog` in one atomic update (the interface is never without a
 * program); otherwise (or when the pinned link's interface is gone, its
 * ifindex reused) `prog` is attached and the new link pinned there.
 * `onAttachError` may turn an attach failure into a better error.
 */
export function attachOrReusePinned(
  prog: BpfProgram,
  ifindex: number,
  pinPath: string,
  onAttachError: (e: unknown) => unknown = (e) => e,
): { link: XdpLink; reused: boolean } {
  if (existsSync(pinPath)) {
    const link = XdpLink.openPinned(pinPath, ifindex);
    try {
      link.update(prog);
      return { link, reused: true };
    } catch (e) {
      link.release();
      if (!(e instanceof BpfError && (e.code === 'ENOLINK' || e.code === 'ENODEV'))) throw e;
      rmSync(pinPath, { force: true });
    }
  }
  let link: XdpLink;
  try {
    link = XdpLink.attach(prog, ifindex);
  } catch (e) {
    throw onAttachError(e);
  }
  try {
    link.pin(pinPath);
  } catch (e) {
    link.detach();
    throw e;
  }
  return { link, reused: false };
}

export type TcDirection = 'ingress' | 'egress';
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

function tcHook(ifindex: number, dir: TcDirection): Buffer {
  const hook = newOpts(TC_HOOK);
  hook.writeInt32LE(ifindex, off(TC_HOOK, 'ifindex'));
  hook.writeUInt32LE(dir === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, off(TC_HOOK, 'attach_point'));
  return hook;
}

export interface TcAttachment {
  readonly ifindex: number;
  readonly direction: TcDirection;
  readonly handle: number;
  readonly priority: number;
  detach(): void;
}

/**
 * Removes the TC filter at (handle, priority) of the clsact hook, whoever
 * attached it (a filter outlives the process that made it). False when there
 * was none.
 */
export function detachTc(ifindex: number, direction: TcDirection, priority = 1, handle = 1): boolean {
  const d = newOpts(TC_OPTS);
  d.writeUInt32LE(handle, off(TC_OPTS, 'handle'));
  d.writeUInt32LE(priority, off(TC_OPTS, 'priority'));
  const r = bpf.tc_detach(tcHook(ifindex, direction), d);
  if (r === -2 || r === -22) return false; // ENOENT; EINVAL: no clsact qdisc on it
  if (r < 0) throw new BpfError('tc_detach', -r, `on ifindex ${ifindex} ${direction}`);
  return true;
}

/** Attaches a TC program on the clsact qdisc (created if absent). */
export function attachTc(
  prog: BpfProgram,
  ifindex: number,
  direction: TcDirection,
  priority = 1,
  handle = 1,
): TcAttachment {
  const hook = tcHook(ifindex, direction);
  const rc = bpf.tc_hook_create(hook);
  if (rc < 0 && rc !== -17 /* EEXIST: clsact already there */)
    throw new BpfError('tc_hook_create', -rc, `on ifindex ${ifindex}`);
  const opts = newOpts(TC_OPTS);
  opts.writeInt32LE(prog.fd, off(TC_OPTS, 'prog_fd'));
  opts.writeUInt32LE(handle, off(TC_OPTS, 'handle'));
  opts.writeUInt32LE(priority, off(TC_OPTS, 'priority'));
  const arc = bpf.tc_attach(hook, opts);
  if (arc < 0) throw new BpfError('tc_attach', -arc, `of ${prog.name} to ifindex ${ifindex} ${direction}`);
  return {
    ifindex,
    direction,
    handle,
    priority,
    detach() {
      const d = newOpts(TC_OPTS);
      d.writeUInt32LE(handle, off(TC_OPTS, 'handle'));
      d.writeUInt32LE(priority, off(TC_OPTS, 'priority'));
      const r = bpf.tc_detach(tcHook(ifindex, direction), d);
      if (r < 0 && r !== -2) throw new BpfError('tc_detach', -r, `on ifindex ${ifindex} ${direction}`);
    },
  };
}
