/**
 * Readiness of raw descriptors, for sockets Node must not read itself.
 *
 * A unix socket that carries SCM_RIGHTS descriptors has to be read with
 * recvmsg: a plain read() (what libuv does for a net.Socket) drops the
 * descriptors. Node has no JavaScript API to wait for a descriptor to become
 * readable without reading it, but its event loop has one: libuv's
 * uv_poll_t. Node exports libuv's symbols (for addons), so koffi binds
 * them from the process itself, and each watched descriptor gets a
 * uv_poll_t on the main loop. Its callback runs on the main thread in the
 * loop's poll phase, the same epoll wait that serves every net.Socket: no
 * worker thread, no hop between threads (an earlier version waited in
 * poll(2) on a libuv worker thread and cost a thread wake-up per request).
 *
 * libuv keeps one watcher per descriptor number, and the net.Socket that
 * owns the descriptor registers its own when a write has to wait; so the
 * uv_poll_t watches a dup() of it (the same open socket, another number),
 * closed once libuv has closed the handle. Callbacks must read until EAGAIN
 * (epoll is level-triggered here: what they leave is reported again) and
 * may be spurious; reading EAGAIN is fine. A hang-up or an error is
 * reported as readable: the read then says what happened.
 */
import { errno } from './errno.js';
import { bind, koffi } from './koffi.js';

const libc = koffi.load('libc.so.6');
const dup = bind<[number], number>(libc, 'int dup(int fd)');
const closeFd = bind<[number], number>(libc, 'int close(int fd)');

// libuv, from the node binary's own exported symbols.
const self = koffi.load(null as unknown as string);
koffi.proto('void baton_uv_poll_cb(void *handle, int status, int events)');
koffi.proto('void baton_uv_close_cb(void *handle)');
type Handle = unknown;
const uvDefaultLoop = bind<[], Handle>(self, 'void *uv_default_loop(void)');
const uvHandleSize = bind<[number], number>(self, 'size_t uv_handle_size(int type)');
const uvPollInit = bind<[Handle, Handle, number], number>(self, 'int uv_poll_init(void *loop, void *handle, int fd)');
const uvPollStart = bind<[Handle, number, bigint], number>(
  self,
  'int uv_poll_start(void *handle, int events, baton_uv_poll_cb *cb)',
);
const uvPollStop = bind<[Handle], number>(self, 'int uv_poll_stop(void *handle)');
const uvClose = bind<[Handle, bigint], void>(self, 'void uv_close(void *handle, baton_uv_close_cb *cb)');
const uvStrerror = bind<[number], string>(self, 'const char *uv_strerror(int err)');

/** uv_handle_type UV_POLL and uv_poll_event UV_READABLE | UV_DISCONNECT (uv.h). */
const UV_POLL = 8;
const UV_READABLE = 1;
const UV_DISCONNECT = 4;
const POLL_HANDLE_BYTES = uvHandleSize(UV_POLL);

interface Watch {
  handle: Handle;
  /** the dup() libuv watches */
  fd: number;
  onReadable: () => void;
  /** set once uv_close was called: the memory and the dup go when libuv says it is closed */
  closing?: () => void;
}

/** Every live uv_poll_t of the process, by the address of its handle (the callbacks get that address). */
const watches = new Map<bigint, Watch>();

const onPoll = (handle: Handle): void => {
  const w = watches.get(koffi.address(handle));
  if (!w || w.closing) return;
  try {
    w.onReadable();
  } catch (ex) {
    process.emitWarning(`a poll handler threw: ${(ex as Error).message}`);
  }
};

const onClosed = (handle: Handle): void => {
  const key = koffi.address(handle);
  const w = watches.get(key);
  if (!w) return;
  watches.delete(key);
  closeFd(w.fd);
  koffi.free(w.handle as never);
  w.closing?.();
};

// Two callbacks for the whole process (koffi has a limited number of registered slots), never unregistered.
const POLL_CB = koffi.register(onPoll, 'baton_uv_poll_cb *');
const CLOSE_CB = koffi.register(onClosed, 'baton_uv_close_cb *');

export class ReadPoller {
  private readonly byFd = new Map<number, bigint>();
  private closed = false;

  /** Calls `onReadable` (on the main thread) whenever `fd` is readable, hung up or in error. */
  add(fd: number, onReadable: () => void): void {
    if (this.closed) throw new Error('ReadPoller is closed');
    if (this.byFd.has(fd)) this.remove(fd);
    const watched = dup(fd);
    if (watched < 0) throw new Error(`dup(${fd}) failed: errno ${errno()}`);
    const handle = koffi.alloc('uint8_t', POLL_HANDLE_BYTES);
    const fail = (what: string, rc: number): never => {
      koffi.free(handle as never);
      closeFd(watched);
      throw new Error(`${what} failed for descriptor ${fd}: ${uvStrerror(rc)}`);
    };
    const init = uvPollInit(uvDefaultLoop(), handle, watched);
    if (init < 0) fail('uv_poll_init', init);
    const key = koffi.address(handle);
    watches.set(key, { handle, fd: watched, onReadable });
    const start = uvPollStart(handle, UV_READABLE | UV_DISCONNECT, POLL_CB);
    if (start < 0) {
      // An initialized handle can only go through uv_close; onClosed frees it.
      uvClose(handle, CLOSE_CB);
      throw new Error(`uv_poll_start failed for descriptor ${fd}: ${uvStrerror(start)}`);
    }
    this.byFd.set(fd, key);
  }

  /** Stops watching `fd` (at once: no callback for it after this returns). Call before closing it. */
  remove(fd: number): void {
    const key = this.byFd.get(fd);
    if (key === undefined) return;
    this.byFd.delete(fd);
    this.release(key);
  }

  /** Stops watching everything; resolves once libuv has closed every handle. */
  async close(): Promise<void> {
    this.closed = true;
    const keys = [...this.byFd.values()];
    this.byFd.clear();
    await Promise.all(keys.map((k) => this.release(k)));
  }

  private release(key: bigint): Promise<void> {
    const w = watches.get(key);
    if (!w || w.closing) return Promise.resolve();
    return new Promise((resolve) => {
      w.closing = resolve;
      uvPollStop(w.handle);
      uvClose(w.handle, CLOSE_CB);
    });
  }
}
