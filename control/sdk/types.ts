/**
 * The v1 REST contract (docs/api.md) as TypeScript types for the SDK, the
 * CLI and the dispatcher, derived from the API's TypeBox schemas (type-only
 * imports: nothing of fastify or TypeBox is loaded at run time). Ids are
 * decimal strings, addresses "ip:port" ("[v6]:port").
 */
import type { Static } from '@sinclair/typebox';
import type * as C from '../api/cluster-schemas.js';
import type * as S from '../api/schemas.js';

export type Splice = Static<typeof S.Splice>;
export type SpliceState = Splice['state'];
export type Handoff = Splice['handoffs'][number];
export type DirectionTraffic = Splice['traffic']['toBackend'];
/** RFC 9457 problem document, as the daemon sends it. */
export type Problem = S.Problem;
export type SocketRef = Static<typeof S.SocketRef>;
/** POST /v1/splices, by descriptor. */
export type SpliceByFd = Static<typeof S.SpliceByDescriptor>;
/** POST /v1/splices, by address. */
export type SpliceByAddress = Static<typeof S.SpliceByAddress>;
export type SpliceRequest = SpliceByFd | SpliceByAddress;
export type ListQuery = Static<typeof S.ListQuery>;
export type Version = Static<typeof S.Version>;
export interface SpliceList {
  items: Splice[];
  next: string | null;
}
export type BatchResult = { status: number; splice: Splice } | { status: number; error: Problem };
/** POST /v1/migrations (migrate mode). */
export type MigrationRequest = Static<typeof S.MigrationBody>;
export type Migration = Static<typeof S.Migration>;

/** GET /v1/cluster: the cluster as this LB sees it (alone: mode "alone"). */
export type ClusterStatus = C.ClusterStatus;
export type ClusterPeer = ClusterStatus['peers'][number];
/** GET/POST/DELETE /v1/drain. */
export type DrainStatus = C.DrainStatus;
