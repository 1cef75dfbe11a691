/**
 * How testbeds are named on the host: every namespace is `bt-<id>-<node>`,
 * every owner marker and bpffs mount sits under /run/baton-testbed/<prefix>/.
 * Stale cleanup relies on these names, so they have one definition.
 */

/** All testbed namespaces start with this; stale cleanup only ever looks at these. */
export const NS_PREFIX = 'bt-';
/** Owner markers and per-node bpffs mounts: /run/baton-testbed/<prefix>/{owner.json,bpffs/<node>} */
export const RUN_DIR = '/run/baton-testbed';
/** Where `ip netns add` puts its handles. */
export const NETNS_DIR = '/run/netns';

/** `bt-<id>`: what createTestbed accepts as a prefix and what stale cleanup looks for. */
export const PREFIX_RE = /^bt-[A-Za-z0-9]{1,16}$/;
/** `bt-<id>-<node>`: the id has no dash, so the prefix is everything up to the second dash. */
export const NS_NAME_RE = /^(bt-[A-Za-z0-9]+)-(.+)$/;
