/**
 * Where baton's compiled BPF objects are: the one resolver for the daemon,
 * the socket probe, the doctor, the tests and the demo. Objects live in
 * `build/bpf/<name>.o` of baton's package root, which is found by walking up
 * from this module to the directory whose package.json is baton's: the same
 * answer from the source tree (control/bpf/), from the compiled tree
 * (dist/control/bpf/) and from an installed package
 * (node_modules/baton/dist/control/bpf/). Each object can be overridden by a
 * path of its own (--object, --probe-object), the directory by --bpf-dir /
 * BATON_BPF_DIR. No file system access at import: loading this module never
 * fails.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BatonError } from '../errors.js';

/** The objects baton loads, by role: bpf/<name>.c builds build/bpf/<name>.o. */
export const BPF_OBJECTS = {
  /** the LB's XDP program and its control program */
  datapath: 'xdp_baton',
  /** per-socket TCP state no sockopt exposes (ts_recent) */
  probe: 'tcp_probe',
  /** the back end's XDP program (migrate: flow-id restore and hold) and its control program */
  agent: 'xdp_agent',
  /** pass program for testbed veth peers */
  pass: 'xdp_pass',
} as const;
export type BpfObjectRole = keyof typeof BPF_OBJECTS;

const PACKAGE_NAME = 'baton';

/** The nearest directory at or above `from` holding baton's package.json, or undefined. */
export function findPackageRoot(from: string = import.meta.dirname): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        // an unreadable package.json is not baton's; keep walking
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** The default object directory: <package root>/build/bpf (undefined when no package root is found). */
export function defaultBpfDir(from?: string): string | undefined {
  const root = findPackageRoot(from);
  return root === undefined ? undefined : join(root, 'build', 'bpf');
}

export interface ObjectLocation {
  /** an explicit path for this object (--object, --probe-object): the only place looked at */
  path?: string | undefined;
  /** the directory to look in (--bpf-dir, BATON_BPF_DIR); default: the package's build/bpf */
  dir?: string | undefined;
}

/** Where an object is looked for, in order (pure: no file system access beyond finding the package root). */
export function objectCandidates(role: BpfObjectRole, where: ObjectLocation = {}, from?: string): string[] {
  if (where.path) return [resolve(where.path)];
  const file = `${BPF_OBJECTS[role]}.o`;
  if (where.dir) return [resolve(where.dir, file)];
  const dir = defaultBpfDir(from);
  return dir === undefined ? [] : [join(dir, file)];
}

/** What to do about a missing object, for the error and the doctor. */
export function missingObjectHint(role: BpfObjectRole): string {
  const flag =
    role === 'datapath'
      ? '--object (BATON_OBJECT)'
      : role === 'probe'
        ? '--probe-object (BATON_PROBE_OBJECT)'
        : role === 'agent'
          ? "the agent's object option"
          : 'the testbed option xdpPassObj';
  return `build the objects in baton's source tree with \`make bpf\` (an npm package ships them in build/bpf), or point baton at them: --bpf-dir (BATON_BPF_DIR) for the directory, ${flag} for this file`;
}

/**
 * The path of an object that exists. Throws BPF_OBJECT_MISSING naming every
 * place looked at and how to fix it.
 */
export function resolveBpfObject(role: BpfObjectRole, where: ObjectLocation = {}, from?: string): string {
  const candidates = objectCandidates(role, where, from);
  const hit = candidates.find((p) => existsSync(p));
  if (hit) return hit;
  const looked = candidates.length
    ? `looked at ${candidates.join(', ')}`
    : `no baton package root (a directory with baton's package.json) above ${from ?? import.meta.dirname}, and no --bpf-dir`;
  throw new BatonError(
    'BPF_OBJECT_MISSING',
    `the ${role} BPF object ${BPF_OBJECTS[role]}.o was not found: ${looked}; ${missingObjectHint(role)}`,
    role,
  );
}
