/**
 * Exit handlers: one set per process, covering every live testbed, so
 * namespaces go away on process exit, SIGINT/SIGTERM/SIGHUP and uncaught
 * exceptions, with no test having to remember it.
 */

/** What the handlers need of a testbed: a teardown that works inside an exit handler. */
export interface SyncDestroyable {
  destroySync(): void;
}

const live = new Set<SyncDestroyable>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function cleanupAllSync(): void {
  for (const tb of [...live]) tb.destroySync();
}

function onUncaught(): void {
  // Only when the exception will kill the process. If someone handles
  // uncaughtException (node:test does, to report it and go on), the process
  // lives on with its testbeds; 'exit' still covers the end.
  if (process.listenerCount('uncaughtException') === 0) cleanupAllSync();
}

function onSignal(sig: NodeJS.Signals): void {
  // If nobody else handles this signal, restore the default (die by it), so
  // the exit status still says "killed by SIGINT" to the shell / test runner.
  // (Asked before cleanup: the last destroySync removes our listeners.)
  const alone = process.listenerCount(sig) === 1;
  cleanupAllSync();
  if (alone) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

export function track(tb: SyncDestroyable): void {
  if (live.size === 0) {
    process.on('exit', cleanupAllSync);
    // Monitor, not handler: we clean up but keep Node's default crash behaviour.
    process.on('uncaughtExceptionMonitor', onUncaught);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  live.add(tb);
}

export function untrack(tb: SyncDestroyable): void {
  if (!live.delete(tb) || live.size) return;
  process.removeListener('exit', cleanupAllSync);
  process.removeListener('uncaughtExceptionMonitor', onUncaught);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}
