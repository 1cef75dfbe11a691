/**
 * A BPF map by file descriptor, with sizes checked before every syscall and
 * per-CPU values sized and summed the way the kernel lays them out.
 */

import { BpfArgumentError, BpfError } from './errors.js';
import { bpf } from './ffi.js';
import { MAP_BATCH_OPTS, newOpts } from './libbpf-structs.js';

/** bpf_map_type values baton cares about (uapi/linux/bpf.h). */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
} as const;

/** Flags of bpf_map_update_elem. */
export const UpdateFlag = { ANY: 0n, NOEXIST: 1n, EXIST: 2n } as const;
export type UpdateMode = keyof typeof UpdateFlag;

const PERCPU_TYPES = new Set<number>([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  13 /* PERCPU_CGROUP_STORAGE */,
]);

export interface MapInfo {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
}

let cpuCount: number | undefined;
export function possibleCpus(): number {
  if (cpuCount === undefined) {
    const n = bpf.num_possible_cpus();
    if (n < 0) throw new BpfError('num_possible_cpus', -n);
    cpuCount = n;
  }
  return cpuCount;
}

/** A map carries its MapInfo fields (name, fd, type, sizes) as its own (declaration merging). */
export interface BpfMap extends MapInfo {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the constructor assigns every MapInfo field (Object.assign(this, info)), which is what makes the merge safe here.
export class BpfMap {
  /** Bytes of one value as the syscall moves it (all CPUs for per-CPU maps). */
  readonly valueBytes: number;
  readonly perCpu: boolean;
  private readonly slot: number;

  constructor(info: MapInfo) {
    Object.assign(this, info);
    this.perCpu = PERCPU_TYPES.has(info.type);
    // The kernel rounds each CPU's slot up to 8 bytes.
    this.slot = Math.ceil(info.valueSize / 8) * 8;
    this.valueBytes = this.perCpu ? this.slot * possibleCpus() : info.valueSize;
  }

  private checkKey(op: string, key: Buffer): void {
    if (key.length !== this.keySize) {
      throw new BpfArgumentError(op, `map ${this.name} takes ${this.keySize}-byte keys, got ${key.length} bytes`);
    }
  }

  private checkValue(op: string, value: Buffer): void {
    if (value.length !== this.valueBytes) {
      const what = this.perCpu
        ? `${this.valueBytes}-byte values (${possibleCpus()} CPUs x ${this.slot})`
        : `${this.valueSize}-byte values`;
      throw new BpfArgumentError(op, `map ${this.name} takes ${what}, got ${value.length} bytes`);
    }
  }

  update(key: Buffer, value: Buffer, mode: UpdateMode = 'ANY'): void {
    this.checkKey('update', key);
    this.checkValue('update', value);
    const rc = bpf.map_update_elem(this.fd, key, value, UpdateFlag[mode]);
    if (rc < 0) throw new BpfError('update', -rc, `of map ${this.name}`);
  }

  /** The value, or undefined when the key is absent. */
  lookup(key: Buffer): Buffer | undefined {
    this.checkKey('lookup', key);
    const out = Buffer.alloc(this.valueBytes);
    const rc = bpf.map_lookup_elem(this.fd, key, out);
    if (rc === -2) return undefined; // ENOENT
    if (rc < 0) throw new BpfError('lookup', -rc, `in map ${this.name}`);
    return out;
  }

  /** Deletes; returns false when the key was absent. */
  delete(key: Buffer): boolean {
    this.checkKey('delete', key);
    const rc = bpf.map_delete_elem(this.fd, key);
    if (rc === -2) return false;
    if (rc < 0) throw new BpfError('delete', -rc, `from map ${this.name}`);
    return true;
  }

  /** Deletes and returns the value in one call (hash maps, kernel 5.14+); undefined when the key was absent. */
  lookupAndDelete(key: Buffer): Buffer | undefined {
    this.checkKey('lookup_and_delete', key);
    const out = Buffer.alloc(this.valueBytes);
    const rc = bpf.map_lookup_and_delete_elem(this.fd, key, out);
    if (rc === -2) return undefined; // ENOENT
    if (rc < 0) throw new BpfError('lookup_and_delete', -rc, `in map ${this.name}`);
    return out;
  }

  /** Keys in kernel order. Entries deleted meanwhile may restart the walk. */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = bpf.map_get_next_key(this.fd, prev, next);
      if (rc === -2) return;
      if (rc < 0) throw new BpfError('get_next_key', -rc, `in map ${this.name}`);
      yield next;
      prev = next;
    }
  }

  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  /** Every entry through BPF_MAP_LOOKUP_BATCH, `chunk` entries per syscall. */
  lookupBatch(chunk = 256): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    let keys = Buffer.alloc(this.keySize * chunk);
    let values = Buffer.alloc(this.valueBytes * chunk);
    // Hash maps use a 4-byte bucket cursor; arrays use a key-sized one.
    const cursorSize = Math.max(4, this.keySize);
    let inBatch: Buffer | null = null;
    const opts = newOpts(MAP_BATCH_OPTS);
    for (;;) {
      const outBatch = Buffer.alloc(cursorSize);
      const count = Buffer.alloc(4);
      count.writeUInt32LE(chunk);
      const rc = bpf.map_lookup_batch(this.fd, inBatch, outBatch, keys, values, count, opts);
      if (rc === -28 /* ENOSPC */) {
        // A hash bucket holds more entries than `chunk`: grow and retry.
        chunk *= 2;
        keys = Buffer.alloc(this.keySize * chunk);
        values = Buffer.alloc(this.valueBytes * chunk);
        continue;
      }
      if (rc < 0 && rc !== -2) throw new BpfError('lookup_batch', -rc, `in map ${this.name}`);
      const n = count.readUInt32LE();
      for (let i = 0; i < n; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * this.valueBytes, (i + 1) * this.valueBytes)),
        ]);
      }
      if (rc === -2) return out;
      inBatch = outBatch;
    }
  }

  /** Splits a per-CPU value into one buffer per CPU. */
  perCpuValues(value: Buffer): Buffer[] {
    if (!this.perCpu) return [value];
    const n = possibleCpus();
    const parts: Buffer[] = [];
    for (let i = 0; i < n; i++) parts.push(value.subarray(i * this.slot, i * this.slot + this.valueSize));
    return parts;
  }

  /** A per-CPU value made of u64 counters, summed over CPUs. */
  sumU64(value: Buffer): bigint[] {
    const words = this.valueSize / 8;
    const sums = new Array<bigint>(words).fill(0n);
    for (const part of this.perCpuValues(value)) {
      for (let w = 0; w < words; w++) sums[w] = (sums[w] as bigint) + part.readBigUInt64LE(w * 8);
    }
    return sums;
  }

  /** A value buffer of the right size, every CPU's slot set to `one`. */
  replicate(one: Buffer): Buffer {
    if (!this.perCpu) return one;
    const out = Buffer.alloc(this.valueBytes);
    for (let i = 0; i < possibleCpus(); i++) one.copy(out, i * this.slot);
    return out;
  }
}
