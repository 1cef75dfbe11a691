/**
 * Opening and loading a BPF object file. Loading runs the verifier, which can
 * take a while for large programs; it runs on a worker thread so the event
 * loop (the REST API, metrics) stays responsive meanwhile.
 */
import { existsSync } from 'node:fs';
import { errno } from '../sys/errno.js';
import { BpfArgumentError, BpfError } from './errors.js';
import { bpf } from './ffi.js';
import type { MapHandle, ObjectHandle, ProgramHandle } from './handles.js';
import { MAP_INFO, newOpts, OBJECT_OPEN_OPTS, off } from './libbpf-structs.js';
import { BpfMap } from './map.js';

export interface OpenOptions {
  /** Per-map settings applied between open and load. */
  maps?: Record<string, MapSettings>;
  /** Kernel verifier log level (0 = only on failure, 1, 2 = verbose). */
  kernelLogLevel?: 0 | 1 | 2;
}

export interface MapSettings {
  maxEntries?: number;
  /** Pin here; if a compatible map is already pinned here, reuse it instead. */
  pinPath?: string;
}

export class BpfProgram {
  constructor(
    readonly handle: ProgramHandle,
    readonly name: string,
  ) {}
  get fd(): number {
    const fd = bpf.program_fd(this.handle);
    if (fd < 0) throw new BpfError('program_fd', -fd, `of ${this.name} (is the object loaded?)`);
    return fd;
  }
}

export class BpfObject {
  private loaded = false;
  private closed = false;
  private readonly mapHandles = new Map<string, MapHandle>();
  private readonly programs = new Map<string, BpfProgram>();

  private constructor(
    readonly handle: ObjectHandle,
    readonly path: string,
  ) {
    for (let m = bpf.next_map(handle, null); m; m = bpf.next_map(handle, m)) this.mapHandles.set(bpf.map_name(m), m);
    for (let p = bpf.next_program(handle, null); p; p = bpf.next_program(handle, p)) {
      const name = bpf.program_name(p);
      this.programs.set(name, new BpfProgram(p, name));
    }
  }

  /** Opens (parses) the object and applies options; nothing reaches the kernel yet. */
  static open(path: string, options: OpenOptions = {}): BpfObject {
    const opts = newOpts(OBJECT_OPEN_OPTS);
    opts.writeUInt32LE(options.kernelLogLevel ?? 0, off(OBJECT_OPEN_OPTS, 'kernel_log_level'));
    const handle = bpf.open_file(path, opts);
    if (!handle) {
      const e = errno();
      throw new BpfError('open', e, existsSync(path) ? `of ${path}` : `of ${path} (no such file)`);
    }
    const obj = new BpfObject(handle, path);
    try {
      for (const [name, s] of Object.entries(options.maps ?? {})) obj.configureMap(name, s);
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  private configureMap(name: string, s: MapSettings): void {
    const m = this.mapHandle(name);
    if (s.maxEntries !== undefined) {
      if (!Number.isInteger(s.maxEntries) || s.maxEntries < 1) {
        throw new BpfArgumentError(
          'set_max_entries',
          `map ${name}: max entries must be a positive integer, got ${s.maxEntries}`,
        );
      }
      const rc = bpf.map_set_max_entries(m, s.maxEntries);
      if (rc < 0) throw new BpfError('set_max_entries', -rc, `of map ${name}`);
    }
    if (s.pinPath !== undefined) {
      const rc = bpf.map_set_pin_path(m, s.pinPath);
      if (rc < 0) throw new BpfError('set_pin_path', -rc, `of map ${name}`);
    }
  }

  /** Creates (or reuses pinned) maps and loads programs through the verifier. */
  async load(): Promise<void> {
    if (this.loaded) return;
    const rc = await new Promise<number>((resolve, reject) => {
      bpf.object_load.async(this.handle, (err, res) => (err ? reject(err) : resolve(res)));
    });
    if (rc < 0) throw new BpfError('load', -rc, `of ${this.path}`);
    this.loaded = true;
  }

  private mapHandle(name: string): MapHandle {
    const m = this.mapHandles.get(name);
    if (!m)
      throw new BpfArgumentError(
        'map',
        `object ${this.path} has no map "${name}" (has: ${[...this.mapHandles.keys()].join(', ')})`,
      );
    return m;
  }

  mapNames(): string[] {
    return [...this.mapHandles.keys()];
  }

  map(name: string): BpfMap {
    const m = this.mapHandle(name);
    const fd = bpf.map_fd(m);
    if (fd < 0) throw new BpfError('map_fd', -fd, `of ${name} (is the object loaded?)`);
    return new BpfMap({
      name,
      fd,
      type: bpf.map_type(m),
      keySize: bpf.map_key_size(m),
      valueSize: bpf.map_value_size(m),
      maxEntries: bpf.map_max_entries(m),
    });
  }

  /** Pins a loaded map at `path` (maps configured with pinPath pin themselves). */
  pinMap(name: string, path: string): void {
    const rc = bpf.map_pin(this.mapHandle(name), path);
    if (rc < 0) throw new BpfError('pin', -rc, `of map ${name} at ${path}`);
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (!p)
      throw new BpfArgumentError(
        'program',
        `object ${this.path} has no program "${name}" (has: ${[...this.programs.keys()].join(', ')})`,
      );
    return p;
  }

  programNames(): string[] {
    return [...this.programs.keys()];
  }

  /** Frees libbpf's state and the object's fds. Attached links stay if pinned. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    bpf.object_close(this.handle);
  }
}

/** Opens a map pinned on bpffs, e.g. to read counters from another process. */
export function openPinnedMap(path: string): BpfMap {
  const fd = bpf.obj_get(path);
  if (fd < 0) throw new BpfError('obj_get', -fd, `of ${path}`);
  const info = Buffer.alloc(MAP_INFO.size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(MAP_INFO.size);
  const rc = bpf.obj_get_info_by_fd(fd, info, len);
  if (rc < 0) throw new BpfError('obj_get_info_by_fd', -rc, `of ${path}`);
  const nameOff = off(MAP_INFO, 'name');
  const rawName = info.subarray(nameOff, nameOff + 16); // BPF_OBJ_NAME_LEN, NUL-padded
  return new BpfMap({
    name: rawName.toString('utf8').replace(/\0.*$/s, ''),
    fd,
    type: info.readUInt32LE(off(MAP_INFO, 'type')),
    keySize: info.readUInt32LE(off(MAP_INFO, 'key_size')),
    valueSize: info.readUInt32LE(off(MAP_INFO, 'value_size')),
    maxEntries: info.readUInt32LE(off(MAP_INFO, 'max_entries')),
  });
}
