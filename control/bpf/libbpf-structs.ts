/**
 * Byte layouts of the libbpf option structs baton passes (x86-64, libbpf
 * 1.1). Each starts with `size_t sz`, which libbpf uses for forward and
 * backward compatibility. test/unit/abi-layout.test.ts compiles a C program
 * against the installed libbpf.h and checks every size and offset here.
 */
import type { StructLayout } from '../sys/struct-layout.js';

export type { StructLayout } from '../sys/struct-layout.js';

export const TC_HOOK: StructLayout = {
  name: 'bpf_tc_hook',
  size: 24,
  fields: { sz: 0, ifindex: 8, attach_point: 12, parent: 16 },
};

export const TC_OPTS: StructLayout = {
  name: 'bpf_tc_opts',
  size: 32,
  fields: { sz: 0, prog_fd: 8, flags: 12, prog_id: 16, handle: 20, priority: 24 },
};

export const TEST_RUN_OPTS: StructLayout = {
  name: 'bpf_test_run_opts',
  size: 80,
  fields: {
    sz: 0,
    data_in: 8,
    data_out: 16,
    data_size_in: 24,
    data_size_out: 28,
    ctx_in: 32,
    ctx_out: 40,
    ctx_size_in: 48,
    ctx_size_out: 52,
    retval: 56,
    repeat: 60,
    duration: 64,
    flags: 68,
    cpu: 72,
    batch_size: 76,
  },
};

export const MAP_BATCH_OPTS: StructLayout = {
  name: 'bpf_map_batch_opts',
  size: 24,
  fields: { sz: 0, elem_flags: 8, flags: 16 },
};

export const XDP_MD: StructLayout = {
  name: 'xdp_md',
  size: 24,
  fields: { data: 0, data_end: 4, data_meta: 8, ingress_ifindex: 12, rx_queue_index: 16, egress_ifindex: 20 },
};

export const OBJECT_OPEN_OPTS: StructLayout = {
  name: 'bpf_object_open_opts',
  size: 80,
  fields: {
    sz: 0,
    object_name: 8,
    relaxed_maps: 16,
    pin_root_path: 24,
    kconfig: 40,
    btf_custom_path: 48,
    kernel_log_level: 72,
  },
};

/** Prefix of struct bpf_map_info (uapi) that baton reads. */
export const MAP_INFO: StructLayout = {
  name: 'bpf_map_info',
  size: 88,
  fields: { type: 0, id: 4, key_size: 8, value_size: 12, max_entries: 16, map_flags: 20, name: 24 },
};

export const LIBBPF_STRUCTS: readonly StructLayout[] = [
  OBJECT_OPEN_OPTS,
  MAP_INFO,
  TC_HOOK,
  TC_OPTS,
  TEST_RUN_OPTS,
  MAP_BATCH_OPTS,
  XDP_MD,
];

/** A zeroed struct buffer with `sz` filled in. */
export function newOpts(layout: StructLayout): Buffer {
  const b = Buffer.alloc(layout.size);
  if (layout.fields.sz === 0) b.writeBigUInt64LE(BigInt(layout.size), 0);
  return b;
}

export function off(layout: StructLayout, field: string): number {
  const o = layout.fields[field];
  if (o === undefined) throw new Error(`${layout.name} has no field ${field}`);
  return o;
}
