/**
 * BPF_PROG_TEST_RUN: runs a loaded program on a packet in the kernel and
 * returns its verdict, the packet as the program left it, and the average
 * run time. The basis of the fixture tests and the per-packet benchmarks.
 */
import { nativeMemory } from '../sys/koffi.js';
import { BpfArgumentError, BpfError } from './errors.js';
import { bpf } from './ffi.js';
import { newOpts, off, TEST_RUN_OPTS, XDP_MD } from './libbpf-structs.js';
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
const MAX_CTX = 4096;

/**
 * Native scratch memory for the runs, allocated once: the opts struct embeds
 * pointers, so packet and context must live outside the JS heap, and
 * allocating, viewing and freeing it on every run cost more than the run
 * itself. Runs are synchronous, so one set serves every call.
 */
let scratch:
  | { dataIn: bigint; dataOut: bigint; ctx: bigint; inView: Buffer; outView: Buffer; ctxView: Buffer }
  | undefined;
function buffers() {
  if (!scratch) {
    const dataIn = nativeMemory.alloc(MAX_FRAME);
    const dataOut = nativeMemory.alloc(MAX_FRAME);
    const ctx = nativeMemory.alloc(MAX_CTX);
    scratch = {
      dataIn,
      dataOut,
      ctx,
      inView: nativeMemory.view(dataIn, MAX_FRAME),
      outView: nativeMemory.view(dataOut, MAX_FRAME),
      ctxView: nativeMemory.view(ctx, MAX_CTX),
    };
  }
  return scratch;
}

export function testRun(prog: BpfProgram, input: TestRunInput): TestRunResult {
  const { packet } = input;
  if (packet.length < 14 || packet.length > MAX_FRAME - 256) {
    throw new BpfArgumentError('test_run', `packet must be 14..${MAX_FRAME - 256} bytes, got ${packet.length}`);
  }
  const m = buffers();
  packet.copy(m.inView);
  const opts = newOpts(TEST_RUN_OPTS);
  opts.writeBigUInt64LE(m.dataIn, off(TEST_RUN_OPTS, 'data_in'));
  opts.writeUInt32LE(packet.length, off(TEST_RUN_OPTS, 'data_size_in'));
  opts.writeBigUInt64LE(m.dataOut, off(TEST_RUN_OPTS, 'data_out'));
  opts.writeUInt32LE(MAX_FRAME, off(TEST_RUN_OPTS, 'data_size_out'));
  opts.writeInt32LE(input.repeat ?? 1, off(TEST_RUN_OPTS, 'repeat'));
  if (input.ingressIfindex) {
    m.ctxView.fill(0, 0, XDP_MD.size);
    m.ctxView.writeUInt32LE(packet.length, off(XDP_MD, 'data_end'));
    m.ctxView.writeUInt32LE(input.ingressIfindex, off(XDP_MD, 'ingress_ifindex'));
    opts.writeBigUInt64LE(m.ctx, off(TEST_RUN_OPTS, 'ctx_in'));
    opts.writeUInt32LE(XDP_MD.size, off(TEST_RUN_OPTS, 'ctx_size_in'));
  }
  const rc = bpf.prog_test_run_opts(prog.fd, opts);
  if (rc < 0) throw new BpfError('test_run', -rc, `of ${prog.name}`);
  const outLen = Math.min(opts.readUInt32LE(off(TEST_RUN_OPTS, 'data_size_out')), MAX_FRAME);
  return {
    retval: opts.readUInt32LE(off(TEST_RUN_OPTS, 'retval')),
    packet: Buffer.from(m.outView.subarray(0, outLen)),
    durationNs: opts.readUInt32LE(off(TEST_RUN_OPTS, 'duration')),
  };
}

/**
 * Runs a SEC("syscall") program with `ctx` as its argument (no packet) and
 * returns its return value and the argument as the program left it (the
 * kernel copies the context back). Such programs change maps in place.
 */
export function runSyscallProgram(prog: BpfProgram, ctx: Buffer): { retval: number; ctx: Buffer } {
  if (ctx.length === 0 || ctx.length > MAX_CTX)
    throw new BpfArgumentError('test_run', `context must be 1..${MAX_CTX} bytes, got ${ctx.length}`);
  const m = buffers();
  ctx.copy(m.ctxView);
  const opts = newOpts(TEST_RUN_OPTS);
  opts.writeBigUInt64LE(m.ctx, off(TEST_RUN_OPTS, 'ctx_in'));
  opts.writeUInt32LE(ctx.length, off(TEST_RUN_OPTS, 'ctx_size_in'));
  const rc = bpf.prog_test_run_opts(prog.fd, opts);
  if (rc < 0) throw new BpfError('test_run', -rc, `of ${prog.name}`);
  return {
    retval: opts.readUInt32LE(off(TEST_RUN_OPTS, 'retval')),
    ctx: Buffer.from(m.ctxView.subarray(0, ctx.length)),
  };
}

/** XDP verdicts by name. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
export type XdpActionName = keyof typeof XdpAction;
export function xdpActionName(v: number): XdpActionName | `UNKNOWN(${number})` {
  const e = Object.entries(XdpAction).find(([, n]) => n === v);
  return e ? (e[0] as XdpActionName) : `UNKNOWN(${v})`;
}

// ---- profiles (issue 13): TC programs, with a socket mark

/** The prefix of struct __sk_buff a TC test run sets and reads (uapi bpf.h; len must be 0). */
const SK_BUFF_PREFIX = { size: 68, mark: 8, cb: 48 } as const;
/** Where in the scratch context the kernel's __sk_buff comes back, and room for any kernel's (192 bytes on 6.x). */
const SKB_OUT_AT = 512;
const SKB_OUT_SIZE = 512;

export interface TestRunSkbResult extends TestRunResult {
  /** skb->cb[0..4] after the run: what the program left there for its caller */
  cb: number[];
}

/**
 * Runs a TC (sched_cls) program on an Ethernet frame whose skb carries
 * `mark` (what SO_MARK gives a locally sent segment). The kernel builds the
 * skb with CHECKSUM_NONE, so a program that updates checksums by diff must
 * leave a segment whose checksum verifies from scratch.
 */
export function testRunSkb(prog: BpfProgram, input: { packet: Buffer; mark?: number }): TestRunSkbResult {
  const { packet } = input;
  if (packet.length < 14 || packet.length > MAX_FRAME - 256) {
    throw new BpfArgumentError('test_run', `packet must be 14..${MAX_FRAME - 256} bytes, got ${packet.length}`);
  }
  const m = buffers();
  packet.copy(m.inView);
  const opts = newOpts(TEST_RUN_OPTS);
  opts.writeBigUInt64LE(m.dataIn, off(TEST_RUN_OPTS, 'data_in'));
  opts.writeUInt32LE(packet.length, off(TEST_RUN_OPTS, 'data_size_in'));
  opts.writeBigUInt64LE(m.dataOut, off(TEST_RUN_OPTS, 'data_out'));
  opts.writeUInt32LE(MAX_FRAME, off(TEST_RUN_OPTS, 'data_size_out'));
  opts.writeInt32LE(1, off(TEST_RUN_OPTS, 'repeat'));
  m.ctxView.fill(0, 0, SKB_OUT_AT + SKB_OUT_SIZE);
  m.ctxView.writeUInt32LE((input.mark ?? 0) >>> 0, SK_BUFF_PREFIX.mark);
  opts.writeBigUInt64LE(m.ctx, off(TEST_RUN_OPTS, 'ctx_in'));
  opts.writeUInt32LE(SK_BUFF_PREFIX.size, off(TEST_RUN_OPTS, 'ctx_size_in'));
  // The kernel copies its whole __sk_buff out (ENOSPC when it does not fit).
  opts.writeBigUInt64LE(m.ctx + BigInt(SKB_OUT_AT), off(TEST_RUN_OPTS, 'ctx_out'));
  opts.writeUInt32LE(SKB_OUT_SIZE, off(TEST_RUN_OPTS, 'ctx_size_out'));
  const rc = bpf.prog_test_run_opts(prog.fd, opts);
  if (rc < 0) throw new BpfError('test_run', -rc, `of ${prog.name}`);
  const outLen = Math.min(opts.readUInt32LE(off(TEST_RUN_OPTS, 'data_size_out')), MAX_FRAME);
  const ctxOut = m.ctxView.subarray(SKB_OUT_AT, SKB_OUT_AT + SKB_OUT_SIZE);
  return {
    retval: opts.readUInt32LE(off(TEST_RUN_OPTS, 'retval')),
    packet: Buffer.from(m.outView.subarray(0, outLen)),
    durationNs: opts.readUInt32LE(off(TEST_RUN_OPTS, 'duration')),
    cb: [0, 1, 2, 3, 4].map((i) => ctxOut.readUInt32LE(SK_BUFF_PREFIX.cb + i * 4)),
  };
}
// ---- end profiles
