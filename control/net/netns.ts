/**
 * Running code of this process inside a network namespace. setns() moves
 * only the calling thread, which for synchronous calls is Node's main thread;
 * libuv's worker threads stay where they are, so only synchronous work (a
 * BPF_PROG_TEST_RUN, a socket created and used synchronously) belongs inside.
 */
import { closeSync, openSync } from 'node:fs';
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

let depth = 0;
/**
 * Whether the thread is inside withNetnsFd. Outside, it is in its home
 * namespace (nothing else moves it), so caches of "this thread's namespace"
 * (threadNetnsCookie) hold there and only there.
 */
export const awayFromHome = (): boolean => depth > 0;
/** The home namespace, opened once: every outermost withNetnsFd returns there (opening it per call cost ~30 µs of a splice). */
let homeFd: number | undefined;
const THREAD_NETNS = '/proc/thread-self/ns/net';

/** Runs `fn` with this thread in the network namespace `nsFd`, then moves it back. */
export function withNetnsFd<T>(nsFd: number, fn: () => T, what = `netns fd ${nsFd}`): T {
  const outermost = depth === 0;
  if (outermost) homeFd ??= openSync(THREAD_NETNS, 'r');
  const home = outermost && homeFd !== undefined ? homeFd : openSync(THREAD_NETNS, 'r');
  try {
    if (libc.setns(nsFd, CLONE_NEWNET) !== 0) throw new SysError('setns', errno(), `into ${what}`);
    depth++;
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: fn() };
    } catch (error) {
      outcome = { error };
    }
    if (libc.setns(home, CLONE_NEWNET) !== 0) {
      // Staying in the wrong namespace would silently misdirect everything
      // after, so this error wins (and depth stays up: the thread is not
      // home); fn's own error, if any, rides along as the cause.
      throw new SysError('setns', errno(), 'back to the original netns', {
        ...('error' in outcome ? { cause: outcome.error } : {}),
      });
    }
    depth--;
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  } finally {
    if (!outermost) closeSync(home);
  }
}
