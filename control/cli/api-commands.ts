/** The commands that talk to the daemon's REST API: status, splices ls|show|rm, handoff. */

import { CONNECTION_STATES } from '../datapath/connection-plan.js';
import type { BatonClient } from '../sdk/client.js';
import { describeEndpoint } from '../sdk/endpoint.js';
import type { Splice, SpliceState } from '../sdk/types.js';
import { describeCluster } from './cluster-commands.js';
import { humanBytes, humanDuration, type Io, printJson, table } from './io.js';
import { EXIT, UsageError } from './usage.js';

/** Display order of states (the daemon validates --state itself). */
const STATES: readonly SpliceState[] = CONNECTION_STATES;

export async function statusCommand(io: Io, api: BatonClient): Promise<number> {
  const health = await api.health(); // unreachable -> API_UNREACHABLE, rendered by main
  const ready = await api.ready();
  const version = await api.version().catch(() => undefined);
  const splices = ready.ready ? await api.allSplices({}).catch(() => undefined) : undefined;
  // A daemon older than GET /v1/cluster answers ROUTE_NOT_FOUND: the rest of the status still stands.
  const cluster = await api.cluster().catch(() => undefined);
  const byState: Record<string, number> = {};
  for (const s of splices ?? []) byState[s.state] = (byState[s.state] ?? 0) + 1;
  const where = describeEndpoint(api.endpoint);
  if (io.json) {
    printJson(io, {
      api: where,
      health: health.status,
      ready: ready.ready,
      ...(ready.detail ? { readyDetail: ready.detail } : {}),
      version: version ?? null,
      splices: splices ? { total: splices.length, byState } : null,
      cluster: cluster ?? null,
    });
  } else {
    io.out(`daemon    ${where}: running, ${ready.ready ? 'ready' : `NOT ready (${ready.detail})`}`);
    if (version)
      io.out(
        `version   baton ${version.version} (datapath ABI ${version.abi}), kernel ${version.kernel}, libbpf ${version.libbpf}`,
      );
    if (splices) {
      const parts = STATES.filter((s) => byState[s]).map((s) => `${s} ${byState[s]}`);
      io.out(`splices   ${splices.length}${parts.length ? ` (${parts.join(', ')})` : ''}`);
    }
    if (cluster) for (const line of describeCluster(cluster)) io.out(line);
    if (!ready.ready)
      io.out(
        "\nThe datapath is not loaded and attached: check the daemon's log, and `baton doctor --interface <dev>`.",
      );
  }
  return ready.ready ? EXIT.OK : EXIT.FAILED;
}

export interface ListFlags {
  state?: string;
  backend?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
}

export async function splicesLs(io: Io, api: BatonClient, f: ListFlags): Promise<number> {
  const limit = f.limit === undefined ? undefined : Number(f.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
    throw new UsageError(`--limit must be a positive integer; got ${JSON.stringify(f.limit)}`, 'splices');
  if (f.all && f.cursor) throw new UsageError('--all reads every page from the start; drop --cursor', 'splices');
  const q = {
    ...(f.state ? { state: f.state as SpliceState } : {}),
    ...(f.backend ? { backend: f.backend } : {}),
    ...(limit ? { limit } : {}),
  };
  let items: Splice[];
  let next: string | null = null;
  if (f.all) items = await api.allSplices(q);
  else ({ items, next } = await api.listSplices({ ...q, ...(f.cursor ? { cursor: f.cursor } : {}) }));
  if (io.json) {
    printJson(io, { items, next });
    return EXIT.OK;
  }
  if (items.length === 0) {
    io.out(f.state || f.backend ? 'no spliced connections match' : 'no spliced connections');
    return EXIT.OK;
  }
  const now = Date.now();
  io.out(
    table(
      ['ID', 'STATE', 'CLIENT', 'VIP', 'BACKEND', 'HANDOFFS', 'AGE', 'TO-BACKEND', 'TO-CLIENT'],
      items.map((s) => [
        s.id,
        s.state,
        s.client,
        s.vip,
        currentBackend(s),
        s.handoffs.length,
        humanDuration(now - Date.parse(s.createdAt)),
        humanBytes(s.traffic.toBackend.bytes),
        humanBytes(s.traffic.toClient.bytes),
      ]),
    ),
  );
  if (next)
    io.out(
      `\nmore: baton splices ls --cursor ${next}${f.state ? ` --state ${f.state}` : ''}${f.backend ? ` --backend ${f.backend}` : ''}  (or --all)`,
    );
  return EXIT.OK;
}

export async function splicesShow(io: Io, api: BatonClient, id: string): Promise<number> {
  const s = await api.getSplice(id);
  if (io.json) printJson(io, s);
  else io.out(describeSplice(s));
  return EXIT.OK;
}

export async function splicesRm(io: Io, api: BatonClient, id: string): Promise<number> {
  await api.deleteSplice(id);
  if (io.json) printJson(io, { id, deleted: true });
  else io.out(`splice ${id} aborted: both ends were sent a RST and its entries removed`);
  return EXIT.OK;
}

export async function handoffCommand(
  io: Io,
  api: BatonClient,
  id: string,
  backend: string,
  quiesce?: string,
): Promise<number> {
  const q = quiesce === undefined ? undefined : Number(quiesce);
  if (q !== undefined && (!Number.isInteger(q) || q < 0))
    throw new UsageError(
      `--quiesce-timeout-ms must be a non-negative integer; got ${JSON.stringify(quiesce)}`,
      'handoff',
    );
  const s = await api.handoff(id, backend, q !== undefined ? { quiesceTimeoutMs: q } : {});
  if (io.json) printJson(io, s);
  else
    io.out(
      `splice ${s.id}: handoff #${s.handoffs.length - 1} to ${currentBackend(s)} (${s.handoffs.length} of 8 used)`,
    );
  return EXIT.OK;
}

function currentBackend(s: Splice): string {
  return s.handoffs.at(-1)?.backend ?? '-';
}

const signed = (n: number) => (n >= 0 ? `+${n}` : String(n));

export function describeSplice(s: Splice): string {
  const age = humanDuration(Date.now() - Date.parse(s.createdAt));
  const lines = [
    `splice ${s.id}  ${s.state}  IPv${s.family}${s.recovered ? '  (recovered after a daemon restart)' : ''}`,
    `  client    ${s.client}`,
    `  vip       ${s.vip}`,
    `  created   ${s.createdAt} (${age} ago)${s.durationUs !== null ? `, spliced in ${s.durationUs} µs` : ''}`,
    '  handoffs',
    ...s.handoffs.map(
      (h) =>
        `    #${h.index}  ${h.backend} via ${h.local}, from client seq ${h.seqStart}: seq ${signed(h.seqDelta)} ack ${signed(h.ackDelta)}` +
        `${h.timestamps ? ` tsval ${signed(h.tsvalDelta)} tsecr ${signed(h.tsecrDelta)}` : ', no timestamps'}, wscale ${h.wscaleIn}->${h.wscaleOut}`,
    ),
    '  traffic (as the datapath counted it)',
  ];
  for (const [label, t] of [
    ['to back end', s.traffic.toBackend],
    ['to client  ', s.traffic.toClient],
  ] as const) {
    const flags = [t.fin ? 'FIN seen' : '', t.rst ? 'RST seen' : ''].filter(Boolean).join(', ');
    lines.push(
      `    ${label}  ${t.packets} packets, ${humanBytes(t.bytes)}, last ${t.lastSeenMs === null ? 'never' : `${humanDuration(t.lastSeenMs)} ago`}${flags ? `, ${flags}` : ''}`,
    );
  }
  return lines.join('\n');
}
