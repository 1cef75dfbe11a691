/**
 * Readiness of raw descriptors, for sockets Node must not read itself.
 *
 * A unix socket that carries SCM_RIGHTS descriptors has to be read with
 * recvmsg: a plain read() (what libuv does for a net.Socket) drops the
 * descriptors. Node exposes no way to wait for a descriptor to become
 * readable without reading it, so this waits in poll(2) on one libuv
 * worker thread (koffi's async call) for every registered descriptor at
 * once, plus an eventfd that wakes the wait when the set changes. Each
 * readable descriptor's callback then runs on the main thread, and must
 * read until EAGAIN (the poll is level-triggered: what it leaves is
 * reported again at once). Callbacks may be spurious (a descriptor number
 * reused between a remove() and the wait's return): reading EAGAIN is fine.
 *
 * One worker thread is held while any descriptor is registered, none otherwise.
 *
 * struct pollfd { int fd; short events; short revents; }  8 bytes
 */
import { errno } from './errno.js';
import { bind, koffi } from './koffi.js';

const lib = koffi.load('libc.so.6');
type Ptr = unknown;
const poll = bind<[Ptr, number, number], number>(lib, 'int poll(void *fds, unsigned long nfds, int timeout)');
const eventfd = bind<[number, number], number>(lib, 'int eventfd(unsigned int initval, int flags)');
const write = bind<[number, Buffer, number], number>(lib, 'long write(int fd, const void *buf, size_t n)');
const read = bind<[number, Buffer, number], number>(lib, 'long read(int fd, void *buf, size_t n)');
const close = bind<[number], number>(lib, 'int close(int fd)');

export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const POLLFD_SIZE = 8;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;

const ONE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

/** pollfd array of `fds`, each waiting for POLLIN (pure). */
export function encodePollfds(fds: readonly number[]): Buffer {
  const b = Buffer.alloc(POLLFD_SIZE * fds.length);
  for (const [i, fd] of fds.entries()) {
    b.writeInt32LE(fd, i * POLLFD_SIZE);
    b.writeInt16LE(POLLIN, i * POLLFD_SIZE + 4);
  }
  return b;
}

/** The descriptors of a pollfd array whose revents say something happened (pure). */
export function readyFds(b: Buffer, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (b.readInt16LE(i * POLLFD_SIZE + 6) !== 0) out.push(b.readInt32LE(i * POLLFD_SIZE));
  return out;
}

export class ReadPoller {
  private readonly handlers = new Map<number, () => void>();
  private readonly wakeFd: number;
  private waiting = false;
  /** True while callbacks run: the wait started after them picks up any change they make. */
  private dispatching = false;
  private closed = false;
  private onIdle: (() => void) | undefined;

  constructor() {
    this.wakeFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.wakeFd < 0) throw new Error(`eventfd failed: errno ${errno()}`);
  }

  /** Calls `onReadable` (on the main thread) whenever `fd` is readable, hung up or in error. */
  add(fd: number, onReadable: () => void): void {
    if (this.closed) throw new Error('ReadPoller is closed');
    this.handlers.set(fd, onReadable);
    this.rearm();
  }

  /** Stops watching `fd`. Call before closing it. */
  remove(fd: number): void {
    if (this.handlers.delete(fd)) this.rearm();
  }

  /** Stops the wait and frees the worker thread; resolves when it has returned. */
  close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    if (!this.waiting) {
      close(this.wakeFd);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.onIdle = resolve;
      write(this.wakeFd, ONE, 8);
    });
  }

  /** A wait in progress is woken to pick up the new set; otherwise one is started. */
  private rearm(): void {
    if (this.waiting) write(this.wakeFd, ONE, 8);
    else if (!this.dispatching) this.wait();
  }

  private wait(): void {
    if (this.waiting || this.closed || this.handlers.size === 0) return;
    const fds = [this.wakeFd, ...this.handlers.keys()];
    const size = POLLFD_SIZE * fds.length;
    // Native memory: the worker thread writes revents while the JS heap may move.
    const mem = koffi.alloc('uint8_t', size);
    const view = Buffer.from(koffi.view(mem as never, size) as ArrayBuffer);
    encodePollfds(fds).copy(view);
    this.waiting = true;
    poll.async(mem, fds.length, -1, (err, n) => {
      const ready = err || n <= 0 ? [] : readyFds(view, fds.length);
      koffi.free(mem as never);
      this.waiting = false;
      if (this.closed) {
        close(this.wakeFd);
        this.onIdle?.();
        return;
      }
      if (err || n < 0) {
        // poll itself failed (EINTR, ENOMEM; errno stayed on the worker thread): again shortly, never a spin.
        setTimeout(() => this.wait(), 1);
        return;
      }
      this.dispatching = true;
      for (const fd of ready) {
        if (fd === this.wakeFd) {
          read(this.wakeFd, Buffer.alloc(8), 8);
          continue;
        }
        try {
          this.handlers.get(fd)?.();
        } catch (ex) {
          process.emitWarning(`a poll handler threw: ${(ex as Error).message}`);
        }
      }
      this.dispatching = false;
      this.wait();
    });
  }
}
