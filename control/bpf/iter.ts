/**
 * BPF iterators (SEC("iter/...")): a link made once per program, and a run
 * that creates an iterator fd from the link and reads it to the end. Each
 * read() runs the program over the next batch of kernel objects; whatever it
 * prints with bpf_seq_printf/bpf_seq_write is what the read returns. Programs
 * that only update maps print nothing, and a run returns an empty buffer.
 *
 * Network iterators (tcp, udp, unix, netlink, ...) walk the network
 * namespace of the thread that creates the iterator fd. `run({ netnsFd })`
 * creates it inside another namespace: setns() moves only the calling
 * thread, which for these synchronous calls is Node's main thread, and it is
 * moved back before run() returns.
 */
import { bpf, errno as errnoOf, libcSock } from './ffi.js';
import { BpfError } from './errors.js';
import type { LinkHandle } from './handles.js';
import type { BpfProgram } from './object.js';
import { withNetnsFd } from '../net/netns.js';

export interface IterRunOptions {
  /** An fd of a network namespace (e.g. from /run/netns/NAME or SIOCGSKNS) to iterate instead of ours. */
  netnsFd?: number;
  /** Stop reading after this many output bytes (default 16 MiB). */
  maxBytes?: number;
}

export class IterLink {
  private destroyed = false;
  private constructor(
    private readonly handle: LinkHandle,
    readonly program: string,
  ) {}

  /** Attaches an iterator program (no map or cgroup parameter). */
  static attach(prog: BpfProgram): IterLink {
    const link = bpf.attach_iter(prog.handle, null);
    if (!link) throw new BpfError('attach_iter', errnoOf(), `of ${prog.name}`);
    return new IterLink(link, prog.name);
  }

  get fd(): number {
    return bpf.link_fd(this.handle);
  }

  /** Runs the iterator once over everything it walks; returns what it printed. */
  run(opts: IterRunOptions = {}): Buffer {
    if (this.destroyed) throw new BpfError('iter_create', 9 /* EBADF */, `of ${this.program} (link destroyed)`);
    const iterFd = opts.netnsFd === undefined ? this.create() : withNetnsFd(opts.netnsFd, () => this.create());
    try {
      const max = opts.maxBytes ?? 16 << 20;
      const chunks: Buffer[] = [];
      let total = 0;
      const buf = Buffer.alloc(64 << 10);
      for (;;) {
        const n = libcSock.read(iterFd, buf, buf.length);
        if (n < 0) {
          const e = errnoOf();
          if (e === 4 /* EINTR */) continue;
          throw new BpfError('iter_read', e, `of ${this.program}`);
        }
        if (n === 0) break;
        chunks.push(Buffer.from(buf.subarray(0, n)));
        total += n;
        if (total >= max) break;
      }
      return Buffer.concat(chunks);
    } finally {
      libcSock.close(iterFd);
    }
  }

  private create(): number {
    const fd = bpf.iter_create(this.fd);
    if (fd < 0) throw new BpfError('iter_create', -fd, `of ${this.program}`);
    return fd;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    bpf.link_destroy(this.handle);
  }
}
