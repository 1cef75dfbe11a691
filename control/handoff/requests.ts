/**
 * What each request frame of the local handoff channel asks of the
 * daemon's services; the transport (reading, descriptors, replies,
 * violations) is server.ts. Each kind decodes its body (a WireError ends
 * the connection) into a call that owns the frame's descriptors from then
 * on: the service splices or migrates them, or closes them on any failure,
 * exactly as for the REST routes, whose documents the replies carry.
 */
import type { Caller } from '../service/authorize.js';
import type { MigrateService } from '../service/migrate-service.js';
import type { SpliceService } from '../service/splice-service.js';
import { FRAME_TYPE } from './wire.js';
import { decodeLegPortBody, decodeMigrateBody, decodeSpliceBody } from './wire-requests.js';

export interface HandoffServices {
  splices: SpliceService;
  migrations: MigrateService;
}

/** A decoded request, ready to run: resolves with the reply's document, rejects with the error to answer. */
export type PreparedRequest = (
  services: HandoffServices,
  caller: Caller,
  fds: readonly number[],
  receivedAt: number,
) => Promise<unknown>;

export interface RequestKind {
  /** The reply frame of a success. */
  reply: typeof FRAME_TYPE.SPLICED | typeof FRAME_TYPE.MIGRATED | typeof FRAME_TYPE.LEG_PORT_CHOSEN;
  /** Decodes the body; throws WireError when it is malformed. */
  prepare(body: Buffer): PreparedRequest;
}

/** By request frame type (decodeHeader lets no other type through). */
export const REQUEST_KINDS: Readonly<Record<number, RequestKind>> = {
  [FRAME_TYPE.SPLICE]: {
    reply: FRAME_TYPE.SPLICED,
    prepare(body) {
      const b = decodeSpliceBody(body);
      return (s, caller, [client, backend], at) =>
        s.splices.splice(
          caller,
          {
            passed: { client: client as number, backend: backend as number },
            ...(b.prefix ? { prefixBytes: b.prefix } : {}),
            ...(b.quiesceTimeoutMs !== undefined ? { quiesceTimeoutMs: b.quiesceTimeoutMs } : {}),
          },
          at,
        );
    },
  },
  // A port of the leg range for a front end's next back-end connection (no descriptor).
  [FRAME_TYPE.LEG_PORT]: {
    reply: FRAME_TYPE.LEG_PORT_CHOSEN,
    prepare(body) {
      const b = decodeLegPortBody(body);
      return async (s, caller) => s.splices.legPort(caller, b);
    },
  },
  // Migrate mode: the client socket to an agent, through the same service as POST /v1/migrations.
  [FRAME_TYPE.MIGRATE]: {
    reply: FRAME_TYPE.MIGRATED,
    prepare(body) {
      const b = decodeMigrateBody(body);
      return (s, caller, [client], at) =>
        s.migrations.migrate(
          caller,
          {
            passed: client as number,
            agent: b.agent,
            ...(b.received ? { receivedBytes: b.received } : {}),
            ...(b.appProtocol ? { appProtocol: b.appProtocol } : {}),
            ...(b.timeoutMs !== undefined ? { timeoutMs: b.timeoutMs } : {}),
          },
          at,
        );
    },
  },
};
