/**
 * createTestbed: check the topology, pick a free prefix, write the owner
 * marker, build the network, and on any failure remove what was made.
 */

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { buildNetwork } from './build.js';
import { track } from './exit-cleanup.js';
import { cleanStale, listTestbeds } from './inventory.js';
import { NS_PREFIX, PREFIX_RE } from './naming.js';
import { DEFAULT_XDP_PASS_OBJ, type TestbedOptions } from './options.js';
import { procStartTime, readMarker, writeMarker } from './owner-markers.js';
import { planTopology } from './plan.js';
import { Testbed } from './testbed.js';
import type { Topology } from './topology.js';

/** Builds the topology; on any failure everything created so far is removed and the error rethrown. */
export async function createTestbed(topology: Topology, opts: TestbedOptions = {}): Promise<Testbed> {
  const plan = planTopology(topology, opts.autoRoutes ?? true);
  const xdpObj = opts.xdpPassObj ?? DEFAULT_XDP_PASS_OBJ;
  if (!existsSync(xdpObj)) throw new Error(`${xdpObj} is missing: run \`make bpf\` first`);
  if (opts.cleanStale ?? true) cleanStale();

  let prefix = opts.prefix;
  if (prefix !== undefined) {
    if (/^[A-Za-z0-9]{1,16}$/.test(prefix)) prefix = `${NS_PREFIX}${prefix}`;
    if (!PREFIX_RE.test(prefix))
      throw new Error(`bad prefix ${JSON.stringify(opts.prefix)}: want bt-<letters/digits, max 16>`);
    if (listTestbeds().some((t) => t.prefix === prefix))
      throw new Error(`prefix ${prefix} is in use (scripts/testbed ls)`);
  } else {
    const used = new Set(listTestbeds().map((t) => t.prefix));
    do prefix = `${NS_PREFIX}${randomBytes(3).toString('hex')}`;
    while (used.has(prefix));
  }

  const tb = new Testbed(prefix, topology, plan);
  // Marker before the first namespace (see listTestbeds), and never
  // "persistent" until fully built, so a half-built CLI testbed is stale.
  writeMarker({
    prefix,
    pid: process.pid,
    startTime: procStartTime(process.pid),
    topology: topology.name,
    created: new Date().toISOString(),
  });
  if (!opts.persistent) track(tb);
  try {
    await buildNetwork(tb, plan, xdpObj, opts);
  } catch (e) {
    await tb.destroy().catch(() => undefined);
    throw e;
  }
  if (opts.persistent) writeMarker({ ...readMarker(prefix)!, persistent: true });
  return tb;
}
