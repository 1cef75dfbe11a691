/**
 * BPF_PROG_TEST_RUN: runs a loaded program on a packet in the kernel and
 * returns its verdict, the packet as the program left it, and the average
 * run time. The basis of the fixture tests and the per-packet benchmarks.
 */
import { bpf, nativeMemory } from './ffi.js';
import { BpfArgumentError, BpfError } from './errors.js';
import { TEST_RUN_OPTS, XDP_MD, newOpts, off } from './libbpf-structs.js';
import type { BpfProgram } from './object.js';

export interface TestRunInput {
  packet: Buffer;
  /** Run this many times (for timing); default 1. */
  repeat?: number;
  /** xdp_md.ingress_ifindex seen by the program (0: loopback of the current netns). */
  ingressIfindex?: number;
}

export interface TestRunResult {
  retval: number;
  packet: Buffer;
  /** Average nanoseconds per run, as the kernel measured it. */
  durationNs: number;
}

const MAX_FRAME = 4096;

export function testRun(prog: BpfProgram, input: TestRunInput): TestRunResult {
  const { packet } = input;
  if (packet.length < 14 || packet.length > MAX_FRAME - 256) {
    throw new BpfArgumentError('test_run', `packet must be 14..${MAX_FRAME - 256} bytes, got ${packet.length}`);
  }
  // Stable native memory: the opts struct embeds these pointers.
  const dataIn = nativeMemory.alloc(packet.length);
  const dataOut = nativeMemory.alloc(MAX_FRAME);
  const ctxIn = input.ingressIfindex ? nativeMemory.alloc(XDP_MD.size) : 0n;
  try {
    nativeMemory.view(dataIn, packet.length).set(packet);
    const opts = newOpts(TEST_RUN_OPTS);
    opts.writeBigUInt64LE(dataIn, off(TEST_RUN_OPTS, 'data_in'));
    opts.writeUInt32LE(packet.length, off(TEST_RUN_OPTS, 'data_size_in'));
    opts.writeBigUInt64LE(dataOut, off(TEST_RUN_OPTS, 'data_out'));
    opts.writeUInt32LE(MAX_FRAME, off(TEST_RUN_OPTS, 'data_size_out'));
    opts.writeInt32LE(input.repeat ?? 1, off(TEST_RUN_OPTS, 'repeat'));
    if (ctxIn) {
      const md = Buffer.alloc(XDP_MD.size);
      md.writeUInt32LE(packet.length, off(XDP_MD, 'data_end'));
      md.writeUInt32LE(input.ingressIfindex ?? 0, off(XDP_MD, 'ingress_ifindex'));
      nativeMemory.view(ctxIn, XDP_MD.size).set(md);
      opts.writeBigUInt64LE(ctxIn, off(TEST_RUN_OPTS, 'ctx_in'));
      opts.writeUInt32LE(XDP_MD.size, off(TEST_RUN_OPTS, 'ctx_size_in'));
    }
    const rc = bpf.prog_test_run_opts(prog.fd, opts);
    if (rc < 0) throw new BpfError('test_run', -rc, `of ${prog.name}`);
    const outLen = opts.readUInt32LE(off(TEST_RUN_OPTS, 'data_size_out'));
    return {
      retval: opts.readUInt32LE(off(TEST_RUN_OPTS, 'retval')),
      packet: Buffer.from(nativeMemory.view(dataOut, outLen)),
      durationNs: opts.readUInt32LE(off(TEST_RUN_OPTS, 'duration')),
    };
  } finally {
    nativeMemory.free(dataIn);
    nativeMemory.free(dataOut);
    if (ctxIn) nativeMemory.free(ctxIn);
  }
}

/**
 * Runs a SEC("syscall") program with `ctx` as its argument (no packet) and
 * returns its return value and the argument as the program left it (the
 * kernel copies the context back). Such programs change maps in place.
 */
export function runSyscallProgram(prog: BpfProgram, ctx: Buffer): { retval: number; ctx: Buffer } {
  if (ctx.length === 0 || ctx.length > 0xffff) throw new BpfArgumentError('test_run', `context must be 1..65535 bytes, got ${ctx.length}`);
  const ctxMem = nativeMemory.alloc(ctx.length);
  try {
    nativeMemory.view(ctxMem, ctx.length).set(ctx);
    const opts = newOpts(TEST_RUN_OPTS);
    opts.writeBigUInt64LE(ctxMem, off(TEST_RUN_OPTS, 'ctx_in'));
    opts.writeUInt32LE(ctx.length, off(TEST_RUN_OPTS, 'ctx_size_in'));
    const rc = bpf.prog_test_run_opts(prog.fd, opts);
    if (rc < 0) throw new BpfError('test_run', -rc, `of ${prog.name}`);
    return { retval: opts.readUInt32LE(off(TEST_RUN_OPTS, 'retval')), ctx: Buffer.from(nativeMemory.view(ctxMem, ctx.length)) };
  } finally {
    nativeMemory.free(ctxMem);
  }
}

/** XDP verdicts by name. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export type XdpActionName = keyof typeof XdpAction;
export function xdpActionName(v: number): XdpActionName | `UNKNOWN(${number})` {
  const e = Object.entries(XdpAction).find(([, n]) => n === v);
  return e ? (e[0] as XdpActionName) : `UNKNOWN(${v})`;
}
