/**
 * Byte layouts of C structs as TypeScript sees them: a size and the offset
 * of each field. One shape for every struct baton shares with C: the BPF
 * maps' keys and values (control/datapath/abi.ts), libbpf's option structs
 * (control/bpf/libbpf-structs.ts) and the kernel's socket structs
 * (control/tcp/kernel.ts); test/unit/abi-layout.test.ts checks each against
 * the C compiler.
 */
export interface Layout {
  readonly size: number;
  readonly fields: Readonly<Record<string, number>>;
}

/** A layout that carries its C name (for error messages and the layout test). */
export interface StructLayout extends Layout {
  readonly name: string;
}
