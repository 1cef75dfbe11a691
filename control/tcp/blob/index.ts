/**
 * The connection-state blob (docs/state-blob.md): what migrate, takeover and
 * roam ship between hosts. Import from here; the modules behind it are the
 * layout (format), the checks (check), the codec (encode, decode), the
 * checksum and the stream framing.
 */
export { checkBlob } from './check.js';
export { blobChecksum, sealBlob } from './checksum.js';
export { type BlobHeader, decodeChannelBlob, decodeStateBlob, peekBlobHeader } from './decode.js';
export { encodeFlowReservation, encodeStateBlob, frameFields } from './encode.js';
export { BLOB_REFUSAL_REASONS, BlobError, type BlobRefusalReason } from './errors.js';
export {
  type AppLayer,
  BLOB_VERSION,
  type ChannelBlob,
  type FlowMapping,
  type FlowReservation,
  type IpOptions,
  MAX_BLOB_BYTES,
  MAX_QUEUE_BYTES,
  receiveQueueOf,
  type StateBlob,
} from './format.js';
export { BlobFramer, frameBlobs } from './framing.js';
