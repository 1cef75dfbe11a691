/**
 * libc, as baton uses it: sockets for TCP_REPAIR capture and restore
 * (control/tcp/), pidfds for taking other processes' descriptors, setns for
 * network namespaces, and vsnprintf for libbpf's log. Each returns -1 and
 * sets errno on failure, as in C (control/sys/errno.ts reads it). Variadic
 * ones (ioctl, syscall) take a koffi type name before each extra argument:
 * `ioctl(fd, req, 'void *', buf)`, `syscall(SYS_pidfd_open, 'int', pid, 'unsigned int', 0)`.
 */
import { bind, koffi } from './koffi.js';

const lib = koffi.load('libc.so.6');

type Buf = Buffer | null;

export const libc = {
  socket: bind<[number, number, number], number>(lib, 'int socket(int domain, int type, int protocol)'),
  bind: bind<[number, Buffer, number], number>(lib, 'int bind(int fd, const void *addr, uint32_t len)'),
  connect: bind<[number, Buffer, number], number>(lib, 'int connect(int fd, const void *addr, uint32_t len)'),
  listen: bind<[number, number], number>(lib, 'int listen(int fd, int backlog)'),
  accept4: bind<[number, Buf, Buf, number], number>(lib, 'int accept4(int fd, void *addr, uint32_t *len, int flags)'),
  getsockname: bind<[number, Buffer, Buffer], number>(lib, 'int getsockname(int fd, void *addr, uint32_t *len)'),
  getpeername: bind<[number, Buffer, Buffer], number>(lib, 'int getpeername(int fd, void *addr, uint32_t *len)'),
  setsockopt: bind<[number, number, number, Buffer, number], number>(
    lib,
    'int setsockopt(int fd, int level, int name, const void *val, uint32_t len)',
  ),
  getsockopt: bind<[number, number, number, Buffer, Buffer], number>(
    lib,
    'int getsockopt(int fd, int level, int name, void *val, uint32_t *len)',
  ),
  recv: bind<[number, Buffer, number, number], number>(lib, 'long recv(int fd, void *buf, size_t n, int flags)'),
  send: bind<[number, Buffer, number, number], number>(lib, 'long send(int fd, const void *buf, size_t n, int flags)'),
  read: bind<[number, Buffer, number], number>(lib, 'long read(int fd, void *buf, size_t n)'),
  close: bind<[number], number>(lib, 'int close(int fd)'),
  ioctl: bind<[number, number, string, Buffer], number>(lib, 'int ioctl(int fd, unsigned long req, ...)'),
  syscall: bind<[number, ...unknown[]], number>(lib, 'long syscall(long number, ...)'),
  setns: bind<[number, number], number>(lib, 'int setns(int fd, int nstype)'),
  vsnprintf: bind<[Buffer, number, bigint, bigint], number>(
    lib,
    'int vsnprintf(char *buf, size_t n, void *fmt, void *ap)',
  ),
};
