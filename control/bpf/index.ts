/** The BPF binding: the only door from control/ to libbpf. */
export { BpfArgumentError, BpfError } from './errors.js';
export { type LibbpfLogSink, setLibbpfLogSink } from './ffi.js';
export type { LinkHandle, MapHandle, ObjectHandle, ProgramHandle } from './handles.js';
export { attachOrReusePinned, attachTc, detachTc, type TcAttachment, type TcDirection, XdpLink } from './link.js';
export { BpfMap, MapType, possibleCpus, UpdateFlag, type UpdateMode } from './map.js';
export { BpfObject, BpfProgram, type MapSettings, type OpenOptions, openPinnedMap } from './object.js';
export {
  runSyscallProgram,
  type TestRunInput,
  type TestRunResult,
  type TestRunSkbResult,
  testRun,
  testRunSkb,
  XdpAction,
  type XdpActionName,
  xdpActionName,
} from './test-run.js';
