/**
 * baton as users run it, inside a testbed: the daemon and the dispatcher
 * launchers live in lab/launch/ (the demo and the benchmarks use them too);
 * this file re-exports them so tests keep importing one path.
 */

export { asUser } from '../../lab/launch/as-user.js';
export { NODE_CLI } from '../../lab/launch/baton-cli.js';
export { type DaemonProc, startDaemon } from '../../lab/launch/daemon.js';
export { type DispatcherProc, startDispatcher } from '../../lab/launch/dispatcher.js';
