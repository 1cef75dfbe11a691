/**
 * The error types of the BPF binding. Every failing libbpf or BPF syscall
 * wrapper throws a BpfError: a SysError (operation, errno, symbolic code)
 * whose message says what to do about it.
 */
import { type Hints, SysError } from '../sys/errno.js';

/** Hints for the errors users actually hit, keyed by `${op}:${code}` or `code`. */
const HINTS: Hints = {
  EPERM: 'baton needs root (or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN); run it with sudo',
  EACCES: 'the kernel refused access; run as root, and check that unprivileged BPF is not the only thing allowed',
  'open:ENOENT': 'the object file does not exist; run `make bpf` to build the datapath',
  'update:E2BIG': 'the map is full; raise its capacity (max_entries) or delete entries first',
  'update:EEXIST': 'an entry with this key already exists (inserted with NOEXIST)',
  'update:ENOENT': 'no entry with this key exists (updated with EXIST)',
  'delete:ENOENT': 'no entry with this key exists',
  'lookup:ENOENT': 'no entry with this key exists',
  'load:EINVAL': 'the verifier or the kernel rejected the object; the verifier log above says why',
  'load:E2BIG': 'the program is too large for the verifier',
  'attach_xdp:EBUSY': 'another XDP program is attached to this interface; detach it first (ip link set dev IF xdp off)',
  'attach_xdp:EEXIST':
    'another XDP program is attached to this interface; detach it first (ip link set dev IF xdp off)',
  'attach_xdp:ENODEV': 'no interface with this index in the current network namespace',
  'pin:EEXIST': 'something is already pinned at this path; unpin it or reuse it',
  ENOTSUP: 'the kernel or this interface does not support the operation',
  EOPNOTSUPP: 'the kernel or this interface does not support the operation',
};

export class BpfError extends SysError {
  override name = 'BpfError';
  constructor(op: string, errno: number, detail?: string) {
    super(op, errno, detail, { hints: HINTS });
  }
}

/** Thrown before any syscall when arguments cannot be right (wrong key size, ...). */
export class BpfArgumentError extends Error {
  override readonly name = 'BpfArgumentError';
  readonly op: string;
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.op = op;
  }
}
