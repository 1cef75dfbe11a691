/**
 * The one error type of control/tcp/: a failing socket call or a socket that
 * cannot be captured, with the operation, the errno, its symbolic code and a
 * message that says what to do about it (same shape as BpfError).
 */
import { type Hints, SysError } from '../sys/errno.js';

/** Hints for the errors users actually hit, keyed by `${op}:${code}` or `code`. */
const HINTS: Hints = {
  'repair:EPERM': "TCP_REPAIR needs CAP_NET_ADMIN in the socket's network namespace (run baton as root)",
  'pidfd_open:ESRCH': 'no process with this pid exists (it may have exited)',
  'pidfd_open:EINVAL': 'not a valid pid',
  'pidfd_getfd:EBADF': 'the process has no open file descriptor with this number',
  'pidfd_getfd:EPERM':
    'not allowed to take descriptors from this process: baton needs ptrace access to it (root, or CAP_SYS_PTRACE)',
  'pidfd_getfd:ESRCH': 'the process exited meanwhile',
  'pidfd_open:ENOSYS': 'the kernel lacks pidfd_open (Linux 5.3+ needed; pidfd_getfd needs 5.6+)',
  'pidfd_getfd:ENOSYS': 'the kernel lacks pidfd_getfd (Linux 5.6+ needed)',
  'bind:EADDRNOTAVAIL': 'the local address of the captured socket does not exist in this network namespace',
  'connect:EADDRNOTAVAIL':
    'another socket in this network namespace still holds this 4-tuple; release the original (releaseSilently) first',
  'connect:ENETUNREACH': 'no route to the remote address in this network namespace',
  'restore_queue:ENOMEM': 'the kernel could not allocate memory for the queue data',
  ENOTSOCK: 'the file descriptor is not a socket',
  EBADF: 'the file descriptor is not open in this process',
  EPERM: 'baton needs root (CAP_NET_ADMIN) for TCP_REPAIR',
};

export class SocketError extends SysError {
  override name = 'SocketError';
  /**
   * `detail` names the object (e.g. "of fd 7"); `explanation`, when given,
   * replaces the generic hint for conditions that are not plain syscall
   * failures (a listening socket, a queue that keeps changing).
   */
  constructor(op: string, errno: number, detail?: string, explanation?: string) {
    super(op, errno, detail, { hints: HINTS, ...(explanation === undefined ? {} : { explanation }) });
  }
}
