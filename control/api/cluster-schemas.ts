/**
 * The schemas of the operations routes (GET /v1/cluster, GET/POST/DELETE
 * /v1/drain; control/api/cluster-routes.ts): response serialisation and the
 * OpenAPI document come from these, and the SDK's types too. They describe
 * what control/owner/cluster-status.ts and control/service/drain.ts build.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { DRAIN_STATES } from '../service/drain.js';

const Nullable = <T extends TSchema>(t: T, description: string) => Type.Union([t, Type.Null()], { description });
const Count = (description: string) => Type.Integer({ minimum: 0, description });

export const DrainStatus = Type.Object(
  {
    state: Type.Union(
      DRAIN_STATES.map((s) => Type.Literal(s)),
      {
        description:
          'serving; draining (new splices refused with DRAINING, held connections served); drained (draining and holding nothing)',
      },
    ),
    since: Nullable(Type.String({ format: 'date-time' }), 'when the drain started; null while serving'),
    drainedAt: Nullable(Type.String({ format: 'date-time' }), 'when the LB first held nothing while draining'),
    connectionsLeft: Count('connections this LB still holds (spliced, and splices under way)'),
  },
  { title: 'DrainStatus' },
);
export type DrainStatus = Static<typeof DrainStatus>;

const ClusterPeer = Type.Object({
  id: Type.String({ description: 'its --cluster-id' }),
  address: Type.String({ description: 'its --cluster-address: where owner headers go to and come from' }),
  ownerPort: Type.Integer({ description: 'UDP port of the owner header there' }),
  version: Type.String(),
  ttlLeftMs: Nullable(Type.Integer(), 'until its registration expires unless it refreshes; null: store not reachable'),
  lastSeenMsAgo: Nullable(Type.Integer(), 'since its last refresh; null when unknown'),
  connections: Count('its connections installed here as owner entries'),
  forwardedPackets: Count('packets this LB sent it in the owner header (to the owner, or on a second chance)'),
  forwardedBytes: Count('their bytes as sent'),
});

export const ClusterStatus = Type.Object(
  {
    mode: Type.Union([Type.Literal('alone'), Type.Literal('cluster')]),
    detail: Type.String(),
    self: Type.Union([
      Type.Object({ id: Type.String(), address: Type.String(), ownerPort: Type.Integer() }),
      Type.Null(),
    ]),
    store: Type.Union([
      Type.Object({
        kind: Type.Union([Type.Literal('memory'), Type.Literal('redis')]),
        reachable: Type.Boolean(),
        error: Type.Optional(Type.String()),
      }),
      Type.Null(),
    ]),
    peers: Type.Array(ClusterPeer),
    connections: Type.Object({
      owned: Count('held by this LB'),
      published: Count('of those, in the owner directory'),
      forwarded: Count("peers' connections installed here as owner entries"),
      known: Count("peers' connections in the directory"),
    }),
    directory: Type.Union([
      Type.Object({
        pending: Count('changes of this LB not yet in the store'),
        lastPublishAt: Nullable(Type.String({ format: 'date-time' }), 'last change of this LB stored'),
        lastInstallAt: Nullable(Type.String({ format: 'date-time' }), "last peer's change installed here"),
        lastPropagationMs: Nullable(Type.Number(), "from a peer's publish to its entry installed here, the last one"),
        propagationP50Ms: Nullable(Type.Number(), 'over the recent propagations'),
        propagationP99Ms: Nullable(Type.Number(), 'over the recent propagations'),
        samples: Count('recent propagations the percentiles are over'),
      }),
      Type.Null(),
    ]),
    drain: DrainStatus,
  },
  { title: 'ClusterStatus' },
);
export type ClusterStatus = Static<typeof ClusterStatus>;
