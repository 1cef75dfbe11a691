/**
 * The libbpf (1.1+) binding: the functions baton uses, with their C
 * signatures, and libbpf's log routed into a logger. Everything else in
 * control/ goes through the typed wrappers in this directory; libc lives in
 * control/sys/.
 */
import { bind, koffi, type Library } from '../sys/koffi.js';
import { libc } from '../sys/libc.js';
import type { LinkHandle, MapHandle, ObjectHandle, ProgramHandle } from './handles.js';

const libbpf = koffi.load('libbpf.so.1');

koffi.opaque('bpf_object');
koffi.opaque('bpf_map');
koffi.opaque('bpf_program');
koffi.opaque('bpf_link');

type Buf = Buffer | null;

const fn = <A extends unknown[], R>(lib: Library, prototype: string) => bind<A, R>(lib, prototype);

/** libbpf entry points, named as in libbpf.h. */
export const bpf = {
  open_file: fn<[string, Buf], ObjectHandle | null>(
    libbpf,
    'bpf_object *bpf_object__open_file(const char *path, const void *opts)',
  ),
  object_load: fn<[ObjectHandle], number>(libbpf, 'int bpf_object__load(bpf_object *obj)'),
  object_close: fn<[ObjectHandle], void>(libbpf, 'void bpf_object__close(bpf_object *obj)'),
  object_name: fn<[ObjectHandle], string>(libbpf, 'const char *bpf_object__name(bpf_object *obj)'),
  next_map: fn<[ObjectHandle, MapHandle | null], MapHandle | null>(
    libbpf,
    'bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)',
  ),
  next_program: fn<[ObjectHandle, ProgramHandle | null], ProgramHandle | null>(
    libbpf,
    'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)',
  ),
  map_name: fn<[MapHandle], string>(libbpf, 'const char *bpf_map__name(bpf_map *map)'),
  map_fd: fn<[MapHandle], number>(libbpf, 'int bpf_map__fd(bpf_map *map)'),
  map_type: fn<[MapHandle], number>(libbpf, 'int bpf_map__type(bpf_map *map)'),
  map_key_size: fn<[MapHandle], number>(libbpf, 'uint32_t bpf_map__key_size(bpf_map *map)'),
  map_value_size: fn<[MapHandle], number>(libbpf, 'uint32_t bpf_map__value_size(bpf_map *map)'),
  map_max_entries: fn<[MapHandle], number>(libbpf, 'uint32_t bpf_map__max_entries(bpf_map *map)'),
  map_set_max_entries: fn<[MapHandle, number], number>(
    libbpf,
    'int bpf_map__set_max_entries(bpf_map *map, uint32_t n)',
  ),
  map_set_pin_path: fn<[MapHandle, string | null], number>(
    libbpf,
    'int bpf_map__set_pin_path(bpf_map *map, const char *path)',
  ),
  map_pin: fn<[MapHandle, string | null], number>(libbpf, 'int bpf_map__pin(bpf_map *map, const char *path)'),
  map_unpin: fn<[MapHandle, string | null], number>(libbpf, 'int bpf_map__unpin(bpf_map *map, const char *path)'),
  map_reuse_fd: fn<[MapHandle, number], number>(libbpf, 'int bpf_map__reuse_fd(bpf_map *map, int fd)'),
  map_is_pinned: fn<[MapHandle], boolean>(libbpf, 'bool bpf_map__is_pinned(bpf_map *map)'),
  program_name: fn<[ProgramHandle], string>(libbpf, 'const char *bpf_program__name(bpf_program *prog)'),
  program_fd: fn<[ProgramHandle], number>(libbpf, 'int bpf_program__fd(bpf_program *prog)'),
  program_type: fn<[ProgramHandle], number>(libbpf, 'int bpf_program__type(bpf_program *prog)'),
  attach_xdp: fn<[ProgramHandle, number], LinkHandle | null>(
    libbpf,
    'bpf_link *bpf_program__attach_xdp(bpf_program *prog, int ifindex)',
  ),
  link_pin: fn<[LinkHandle, string], number>(libbpf, 'int bpf_link__pin(bpf_link *link, const char *path)'),
  link_unpin: fn<[LinkHandle], number>(libbpf, 'int bpf_link__unpin(bpf_link *link)'),
  link_open: fn<[string], LinkHandle | null>(libbpf, 'bpf_link *bpf_link__open(const char *path)'),
  link_fd: fn<[LinkHandle], number>(libbpf, 'int bpf_link__fd(bpf_link *link)'),
  link_update_program: fn<[LinkHandle, ProgramHandle], number>(
    libbpf,
    'int bpf_link__update_program(bpf_link *link, bpf_program *prog)',
  ),
  link_detach: fn<[LinkHandle], number>(libbpf, 'int bpf_link__detach(bpf_link *link)'),
  link_disconnect: fn<[LinkHandle], void>(libbpf, 'void bpf_link__disconnect(bpf_link *link)'),
  link_destroy: fn<[LinkHandle], number>(libbpf, 'int bpf_link__destroy(bpf_link *link)'),
  tc_hook_create: fn<[Buffer], number>(libbpf, 'int bpf_tc_hook_create(void *hook)'),
  tc_hook_destroy: fn<[Buffer], number>(libbpf, 'int bpf_tc_hook_destroy(void *hook)'),
  tc_attach: fn<[Buffer, Buffer], number>(libbpf, 'int bpf_tc_attach(const void *hook, void *opts)'),
  tc_detach: fn<[Buffer, Buffer], number>(libbpf, 'int bpf_tc_detach(const void *hook, const void *opts)'),
  map_update_elem: fn<[number, Buffer, Buffer, bigint], number>(
    libbpf,
    'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
  ),
  map_lookup_elem: fn<[number, Buffer, Buffer], number>(
    libbpf,
    'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
  ),
  map_delete_elem: fn<[number, Buffer], number>(libbpf, 'int bpf_map_delete_elem(int fd, const void *key)'),
  map_lookup_and_delete_elem: fn<[number, Buffer, Buffer], number>(
    libbpf,
    'int bpf_map_lookup_and_delete_elem(int fd, const void *key, void *value)',
  ),
  map_get_next_key: fn<[number, Buf, Buffer], number>(
    libbpf,
    'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
  ),
  map_lookup_batch: fn<[number, Buf, Buffer, Buffer, Buffer, Buffer, Buf], number>(
    libbpf,
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const void *opts)',
  ),
  obj_get: fn<[string], number>(libbpf, 'int bpf_obj_get(const char *path)'),
  obj_get_info_by_fd: fn<[number, Buffer, Buffer], number>(
    libbpf,
    'int bpf_obj_get_info_by_fd(int fd, void *info, uint32_t *len)',
  ),
  prog_test_run_opts: fn<[number, Buffer], number>(libbpf, 'int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
  num_possible_cpus: fn<[], number>(libbpf, 'int libbpf_num_possible_cpus(void)'),
  set_print: fn<[unknown], unknown>(libbpf, 'void *libbpf_set_print(void *fn)'),
};

export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
export type LibbpfLogSink = (level: LibbpfLogLevel, message: string) => void;

const LEVELS: LibbpfLogLevel[] = ['warn', 'info', 'debug'];
let sink: LibbpfLogSink = (level, message) => {
  if (level === 'warn') process.stderr.write(message);
};
const printProto = koffi.proto('int baton_libbpf_print_fn(int level, void *fmt, void *ap)');
const formatBuf = Buffer.alloc(8192);
// Registered once for the life of the process: libbpf keeps the pointer.
const printCallback = koffi.register((level: number, fmt: bigint, ap: bigint): number => {
  const n = libc.vsnprintf(formatBuf, formatBuf.length, fmt, ap);
  const text = formatBuf.toString('utf8', 0, Math.max(0, Math.min(n, formatBuf.length - 1)));
  sink(LEVELS[level] ?? 'debug', text);
  return 0;
}, koffi.pointer(printProto));
bpf.set_print(printCallback);

/** Routes libbpf's own messages (verifier logs included) to `next`. */
export function setLibbpfLogSink(next: LibbpfLogSink): void {
  sink = next;
}
