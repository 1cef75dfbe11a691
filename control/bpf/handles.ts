/**
 * Opaque libbpf pointers, branded so that one kind cannot be passed where
 * another is expected (a bpf_map* where a bpf_program* belongs compiles to
 * an error, not to a crash inside libbpf).
 */
declare const brand: unique symbol;
type Handle<Kind extends string> = bigint & { readonly [brand]: Kind };

export type ObjectHandle = Handle<'bpf_object'>;
export type MapHandle = Handle<'bpf_map'>;
export type ProgramHandle = Handle<'bpf_program'>;
export type LinkHandle = Handle<'bpf_link'>;

/** A NULL from libbpf: callers turn it into a BpfError with errno. */
export function isNull(p: bigint | null | undefined): boolean {
  return p === null || p === undefined || p === 0n;
}
