/**
 * Running code of this process inside a network namespace. setns() moves
 * only the calling thread, which for synchronous calls is Node's main thread;
 * libuv's worker threads stay where they are, so only synchronous work (a
 * BPF_PROG_TEST_RUN, a socket created and used synchronously) belongs inside.
 */
import { closeSync, openSync, statSync } from 'node:fs';
import { errno, SysError } from '../sys/errno.js';
import { libc } from '../sys/libc.js';

const CLONE_NEWNET = 0x40000000;

/** Runs `fn` with this thread in the network namespace named `name` (ip netns). */
export function withNetns<T>(name: string, fn: () => T): T {
  const target = openSync(`/run/netns/${name}`, 'r');
  try {
    return withNetnsFd(target, fn, `netns ${name}`);
  } finally {
    closeSync(target);
  }
}

/**
 * Identity ("dev:ino") of the calling thread's network namespace. Cached:
 * only withNetnsFd moves the thread, and it forgets the cache both ways.
 */
let threadNetns: string | undefined;
export function threadNetnsId(): string {
  if (threadNetns === undefined) {
    const st = statSync('/proc/thread-self/ns/net');
    threadNetns = `${st.dev}:${st.ino}`;
  }
  return threadNetns;
}

/** Runs `fn` with this thread in the network namespace `nsFd`, then moves it back. */
export function withNetnsFd<T>(nsFd: number, fn: () => T, what = `netns fd ${nsFd}`): T {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    if (libc.setns(nsFd, CLONE_NEWNET) !== 0) throw new SysError('setns', errno(), `into ${what}`);
    threadNetns = undefined;
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: fn() };
    } catch (error) {
      outcome = { error };
    }
    threadNetns = undefined;
    if (libc.setns(home, CLONE_NEWNET) !== 0) {
      // Staying in the wrong namespace would silently misdirect everything
      // after, so this error wins; fn's own error, if any, rides along as the cause.
      throw new SysError('setns', errno(), 'back to the original netns', {
        ...('error' in outcome ? { cause: outcome.error } : {}),
      });
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  } finally {
    closeSync(home);
  }
}
