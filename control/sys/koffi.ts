/**
 * The only module that loads koffi (the FFI). control/sys/libc.ts binds libc
 * through it, control/bpf/ffi.ts libbpf; nothing else in control/ calls
 * native code directly.
 */
import { createRequire } from 'node:module';

// koffi ships CommonJS; createRequire keeps this module ESM.
const require = createRequire(import.meta.url);
export const koffi = require('koffi') as typeof import('koffi');

export const KOFFI_VERSION: string = (koffi as unknown as { version: string }).version;

export type Library = ReturnType<typeof koffi.load>;

/** A bound C function, callable synchronously or with `.async(..., callback)`. */
export type NativeFn<A extends unknown[], R> = ((...a: A) => R) & {
  async: (...a: [...A, (err: unknown, res: R) => void]) => void;
};

/** Binds one C function of `lib` by its prototype. */
export function bind<A extends unknown[], R>(lib: Library, prototype: string): NativeFn<A, R> {
  return lib.func(prototype) as unknown as NativeFn<A, R>;
}

/** Stable native memory, for structs that embed pointers. */
export const nativeMemory = {
  alloc(size: number): bigint {
    return koffi.alloc('uint8_t', size) as unknown as bigint;
  },
  free(p: bigint): void {
    koffi.free(p as never);
  },
  view(p: bigint, size: number): Buffer {
    return Buffer.from(koffi.view(p as never, size) as ArrayBuffer);
  },
};
