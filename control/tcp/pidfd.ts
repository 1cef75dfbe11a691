/**
 * Taking another process's socket: pidfd_open(pid) + pidfd_getfd(pidfd, fd)
 * duplicate the descriptor into this process (Linux 5.6+). The copy refers
 * to the same socket (same file description): options set through it, such
 * as TCP_REPAIR, apply to the owner's socket too, and closing it alone does
 * not close the socket while the owner still holds its descriptor.
 *
 * Needs ptrace access to the target (PTRACE_MODE_ATTACH_REALCREDS): root, or
 * CAP_SYS_PTRACE, or the same user when Yama's ptrace_scope allows it.
 */
import { errnoValue } from '../sys/errno.js';
import { libc } from '../sys/libc.js';
import { SocketError } from './errors.js';
import { SO_TYPE, SOL_SOCKET, SYS_pidfd_getfd, SYS_pidfd_open } from './kernel.js';
import { check, getInt } from './socket.js';

function checkArgs(pid: number, fd: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`pid must be a positive integer, got ${pid}`);
  if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`fd must be a non-negative integer, got ${fd}`);
}

/** A descriptor of this process duplicating `fd` of process `pid`. */
export function takeFd(pid: number, fd: number): number {
  checkArgs(pid, fd);
  const pidfd = check(libc.syscall(SYS_pidfd_open, 'int', pid, 'unsigned int', 0), 'pidfd_open', `of pid ${pid}`);
  try {
    return check(
      libc.syscall(SYS_pidfd_getfd, 'int', pidfd, 'int', fd, 'unsigned int', 0),
      'pidfd_getfd',
      `of fd ${fd} of pid ${pid}`,
    );
  } finally {
    libc.close(pidfd);
  }
}

/**
 * A descriptor of this process for socket `fd` of process `pid`. Throws
 * SocketError: ESRCH when the pid does not exist, EBADF when the process has
 * no such fd, EPERM when baton may not take it, ENOTSOCK when it is not a socket.
 */
export function takeSocket(pid: number, fd: number): number {
  const mine = takeFd(pid, fd);
  try {
    getInt(mine, SOL_SOCKET, SO_TYPE, 'take_socket');
  } catch (e) {
    libc.close(mine);
    if (e instanceof SocketError && e.code === 'ENOTSOCK') {
      throw new SocketError(
        'take_socket',
        errnoValue('ENOTSOCK'),
        `of fd ${fd} of pid ${pid}`,
        `fd ${fd} of pid ${pid} is not a socket`,
      );
    }
    throw e;
  }
  return mine;
}
