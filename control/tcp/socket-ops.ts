/** The splicer's socket operations, implemented with TCP_REPAIR (control/tcp). */
import type { SocketOps } from '../splice/socket-ops.js';
import { SIOCINQ, SIOCOUTQ, SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON } from './kernel.js';
import { captureSockets, leaveRepair, releaseSilently } from './repair.js';
import { check, closeFd, ioctlInt, localAddress, remoteAddress, setInt } from './socket.js';
import { libcSock } from '../bpf/ffi.js';

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
    send(fd, data) {
      let off = 0;
      while (off < data.length) {
        const chunk = data.subarray(off);
        off += check(libcSock.send(fd, chunk, chunk.length, 0), 'send', `on fd ${fd}`);
      }
    },
    close: closeFd,
  };
}
