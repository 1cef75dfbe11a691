/** The splicer's socket operations, implemented with TCP_REPAIR (control/tcp). */

import { withNetnsFd } from '../net/netns.js';
import type { SocketOps } from '../splice/socket-port.js';
import { captureSockets, leaveRepair, releaseSilently } from './capture.js';
import { connectTcp, resetConnection } from './connect.js';
import { SIOCINQ, SIOCOUTQ, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON } from './kernel.js';
import { restoreTcp, writeUnsent } from './restore.js';
import { closeFd, ioctlInt, localAddress, NetnsFds, remoteAddress, setInt } from './socket.js';
import { loadedSocketProbe } from './socket-probe.js';

export function createSocketOps(): SocketOps {
  /** One fd per foreign namespace seen, for the life of the splicer: captures and restores share them. */
  const namespaces = new NetnsFds();
  return {
    endpoints(fd) {
      const local = localAddress(fd);
      const remote = remoteAddress(fd);
      return {
        family: local.family,
        local: { ip: local.ip, port: local.port },
        remote: { ip: remote.ip, port: remote.port },
      };
    },
    queued(fd) {
      return { unacked: ioctlInt(fd, SIOCOUTQ, 'siocoutq'), unread: ioctlInt(fd, SIOCINQ, 'siocinq') };
    },
    capture: (fds, endpoints) => captureSockets(fds, { netns: namespaces, ...(endpoints ? { endpoints } : {}) }),
    leaveRepair,
    enterRepair(fd) {
      setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, 'enter_repair');
    },
    releaseSilently,
    send: writeUnsent,
    close: closeFd,
    netnsOf: (fd) => namespaces.of(fd),
    tuplesInUse(tuples) {
      // The socket probe, once the daemon has loaded it (it does at start): one run per 8 tuples.
      const probe = loadedSocketProbe();
      return probe ? probe.read(tuples).map((row) => row !== undefined) : tuples.map(() => false);
    },
    connect: (remote, family, opts) =>
      connectTcp(remote, family, {
        timeoutMs: opts.timeoutMs,
        ...(opts.mss ? { mss: opts.mss } : {}),
        ...(opts.mark === undefined ? {} : { mark: opts.mark }),
        ...(opts.netns === undefined ? {} : { netnsFd: opts.netns }),
        ...(opts.localPort ? { localPort: opts.localPort } : {}),
      }),
    placeholder(state, netns) {
      const run = () => restoreTcp(state, { stayInRepair: true });
      return netns === undefined ? run() : withNetnsFd(netns, run);
    },
    finish(state, netns) {
      const run = () => closeFd(restoreTcp(state));
      if (netns === undefined) run();
      else withNetnsFd(netns, run);
    },
    reset: resetConnection,
  };
}
