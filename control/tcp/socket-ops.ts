/** The splicer's socket operations, implemented with TCP_REPAIR (control/tcp). */
import type { SocketOps } from '../splice/socket-ops.js';
import { SIOCINQ, SIOCOUTQ, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON } from './kernel.js';
import { captureSockets, leaveRepair, releaseSilently, writeUnsent } from './repair.js';
import { ioctlInt, localAddress, remoteAddress, setInt } from './socket.js';

export function createSocketOps(): SocketOps {
  return {
    endpoints(fd) {
      const local = localAddress(fd);
      const remote = remoteAddress(fd);
      return { family: local.family, local: { ip: local.ip, port: local.port }, remote: { ip: remote.ip, port: remote.port } };
    },
    queued(fd) {
      return { unacked: ioctlInt(fd, SIOCOUTQ, 'siocoutq'), unread: ioctlInt(fd, SIOCINQ, 'siocinq') };
    },
    capture: (fds) => captureSockets(fds),
    leaveRepair,
    enterRepair(fd) {
      setInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON, 'enter_repair');
    },
    releaseSilently,
    send: writeUnsent,
  };
}
