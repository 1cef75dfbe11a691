/**
 * What the daemon keeps under its bpffs directory, and how it is reused and
 * removed. Maps are pinned by Datapath.load (`<name>_v<ABI>`, reused when
 * compatible); XDP links are pinned here as `link_xdp_<ifindex>`. A pinned
 * link outlives the daemon, so on restart it is reopened and switched to the
 * newly loaded program in one atomic update (bpf_link_update), never
 * attached a second time; only teardown() detaches.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { attachOrReusePinned, BpfError, XdpLink } from '../bpf/index.js';
import type { Datapath } from '../datapath/datapath.js';
import { attachProfileEgress, detachProfileEgress } from '../datapath/profile-egress.js';
import { BatonError } from '../errors.js';

const BPF_FS_MAGIC = 0xcafe4a11;
export const XDP_PROGRAM = 'baton_xdp';
export const linkPinPath = (pinDir: string, ifindex: number): string => join(pinDir, `link_xdp_${ifindex}`);
const LINK_PIN = /^link_xdp_(\d+)$/;
/** Maps Datapath.load pins: baton_<name>_v<abi>. */
const MAP_PIN = /^baton_[a-z0-9_]+_v\d+$/;

/** Creates the pin directory and checks it is on a bpffs (the usual mistake: `ip netns exec` hides /sys/fs/bpf). */
export function preparePinDir(pinDir: string): void {
  try {
    mkdirSync(pinDir, { recursive: true });
  } catch (e) {
    throw new BatonError(
      'CONFIG_INVALID',
      `cannot create the pin directory ${pinDir}: ${(e as Error).message}`,
      'pin_dir',
    );
  }
  if (statfsSync(pinDir).type !== BPF_FS_MAGIC) {
    throw new BatonError(
      'CONFIG_INVALID',
      `${pinDir} is not on a bpffs, so pinned maps and links would not survive a restart: mount one (mount -t bpf bpf /sys/fs/bpf) or choose another --pin-dir (inside "ip netns exec", /sys/fs/bpf is a fresh empty directory)`,
      'not_bpffs',
    );
  }
}

/** The ifindex of an interface of this network namespace. */
export function ifindexOf(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
  } catch {
    throw new BatonError(
      'CONFIG_INVALID',
      `no interface named ${name} in this network namespace (see ip link)`,
      'no_interface',
    );
  }
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  link: XdpLink;
  /** True when a link pinned by an earlier daemon was switched to the new program. */
  reused: boolean;
}

/** Attaches the datapath's XDP program to an interface, or reuses the link an earlier daemon pinned. */
export function attachOrReuse(dp: Datapath, ifname: string, pinDir: string): Attachment {
  const ifindex = ifindexOf(ifname);
  const path = linkPinPath(pinDir, ifindex);
  const { link, reused } = attachOrReusePinned(dp.object.program(XDP_PROGRAM), ifindex, path, (e) =>
    e instanceof BpfError && (e.code === 'EBUSY' || e.code === 'EEXIST')
      ? new BatonError(
          'CONFIG_INVALID',
          `${ifname} already has an XDP program that is not baton's pinned link (${path}): remove it (ip link set dev ${ifname} xdp off) or run baton down with the pin directory that holds it`,
          'xdp_busy',
          { cause: e },
        )
      : e,
  );
  try {
    attachProfileEgress(dp.object, ifindex); // profiles (issue 13)
  } catch (e) {
    if (!reused) link.detach();
    throw e;
  }
  return { ifname, ifindex, link, reused };
}

export interface TeardownResult {
  /** ifindexes whose XDP link was detached. */
  detached: number[];
  /** Pinned maps removed. */
  unpinned: string[];
}

/**
 * `baton down`: detaches every pinned XDP link and removes the pinned maps
 * (the kernel frees them once nothing else holds them): every spliced
 * connection stops being forwarded. The directory goes too when empty.
 */
export function teardownPins(pinDir: string): TeardownResult {
  const out: TeardownResult = { detached: [], unpinned: [] };
  if (!existsSync(pinDir)) return out;
  for (const name of readdirSync(pinDir)) {
    const m = LINK_PIN.exec(name);
    if (!m) continue;
    const path = join(pinDir, name);
    const link = XdpLink.openPinned(path, Number(m[1]));
    try {
      link.detach();
    } catch (e) {
      // Already defunct (its interface is gone): removing the pin is all that is left.
      if (!(e instanceof BpfError)) throw e;
    }
    detachProfileEgress(Number(m[1])); // profiles (issue 13)
    rmSync(path, { force: true });
    out.detached.push(Number(m[1]));
  }
  for (const name of readdirSync(pinDir)) {
    if (!MAP_PIN.test(name)) continue;
    rmSync(join(pinDir, name), { force: true });
    out.unpinned.push(name);
  }
  try {
    rmdirSync(pinDir);
  } catch {
    /* not empty (someone else's pins) or not ours to remove */
  }
  return out;
}
