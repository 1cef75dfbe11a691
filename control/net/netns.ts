/**
 * Running code of this process inside a network namespace. setns() moves
 * only the calling thread, which for synchronous calls is Node's main thread;
 * libuv's worker threads stay where they are, so only synchronous work (a
 * BPF_PROG_TEST_RUN, a socket created and used synchronously) belongs inside.
 */
import { closeSync, openSync } from 'node:fs';
import { libcFns, errno } from '../bpf/ffi.js';
import { BpfError } from '../bpf/errors.js';

const CLONE_NEWNET = 0x40000000;

export function withNetns<T>(name: string, fn: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  const target = openSync(`/run/netns/${name}`, 'r');
  try {
    if (libcFns.setns(target, CLONE_NEWNET) !== 0) throw new BpfError('setns', errno(), `into netns ${name}`);
    try {
      return fn();
    } finally {
      if (libcFns.setns(home, CLONE_NEWNET) !== 0) {
        // Staying in the wrong namespace would silently misdirect everything after.
        throw new BpfError('setns', errno(), 'back to the original netns');
      }
    }
  } finally {
    closeSync(target);
    closeSync(home);
  }
}
