/**
 * What GET /v1/version reports: baton's version, the datapath ABI, the
 * kernel and the libbpf the binding loaded. Read once (at startup), never on
 * a request.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { findPackageRoot } from '../bpf/objects.js';
import { ABI_VERSION } from '../datapath/abi.js';

export interface VersionInfo {
  version: string;
  abi: number;
  kernel: string;
  libbpf: string;
}

/** libbpf.so.1 is a symlink to libbpf.so.<major>.<minor>.<patch>. */
function libbpfVersion(): string {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu']) {
    try {
      const m = /libbpf\.so\.(\d+\.\d+\.\d+)$/.exec(realpathSync(`${dir}/libbpf.so.1`));
      if (m?.[1]) return m[1];
    } catch {
      /* not in this directory */
    }
  }
  return 'unknown';
}

/** From baton's package.json, wherever this module runs from (source, dist/, an installed package). */
function packageVersion(): string {
  const root = findPackageRoot(import.meta.dirname);
  if (root === undefined) return 'unknown';
  try {
    return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

let cached: VersionInfo | undefined;

export function versionInfo(): VersionInfo {
  if (!cached) {
    cached = { version: packageVersion(), abi: ABI_VERSION, kernel: release(), libbpf: libbpfVersion() };
  }
  return cached;
}
