/** The BPF binding: the only door from control/ to libbpf. */
export { BpfError, BpfArgumentError } from './errors.js';
export { BpfObject, BpfProgram, openPinnedMap, type OpenOptions, type MapSettings } from './object.js';
export { BpfMap, MapType, UpdateFlag, possibleCpus, type UpdateMode } from './map.js';
export { XdpLink, attachTc, type TcAttachment, type TcDirection } from './link.js';
export { testRun, runSyscallProgram, XdpAction, xdpActionName, type XdpActionName, type TestRunInput, type TestRunResult } from './test-run.js';
export { setLibbpfLogSink, type LibbpfLogSink } from './ffi.js';
export type { ObjectHandle, MapHandle, ProgramHandle, LinkHandle } from './handles.js';
