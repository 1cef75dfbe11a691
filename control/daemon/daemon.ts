/**
 * `baton lb`: loads the datapath (maps pinned and reused under the pin
 * directory), attaches it to the configured interfaces (pinned links,
 * reused and switched atomically on restart), sets the sysctls the datapath
 * needs on those interfaces (host-settings.ts: logged, old values recorded
 * for baton down), rebuilds the records of the
 * connections already in the table (splicer.adopt), and serves the REST API
 * and the metrics. It never detaches on exit: spliced connections keep
 * flowing while the daemon restarts or is upgraded. `baton down`
 * (teardown()) is the one way to remove everything.
 *
 * Shutdown (SIGTERM/SIGINT, through close-with-grace): refuse new splices,
 * let those under way finish, close the listeners, release (not detach) the
 * links and free this process's handles.
 */

import { existsSync, rmSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { readSecretFile } from '../agent/handshake.js';
import { buildApi, INSECURE_WARNING } from '../api/app.js';
import { Datapath } from '../datapath/datapath.js';
import { forgetProfileRecords } from '../datapath/profile-egress.js';
import { HandoffServer } from '../handoff/server.js';
import { drainMetrics } from '../metrics/drain.js';
import { BatonMetrics } from '../metrics/metrics.js';
import { type MetricsServer, serveMetrics } from '../metrics/server.js';
import { FlowIdSwitch } from '../migrate/flow-switch.js';
import { aloneStatus, type ClusterStatusJson, lbClusterStatus } from '../owner/cluster-status.js';
import { datapathOwners } from '../owner/datapath-owners.js';
import { type LbCluster, startLbCluster } from '../owner/lb-cluster.js';
import { peerTrafficMetrics } from '../owner/metrics.js';
import { Drain } from '../service/drain.js';
import { MigrateService } from '../service/migrate-service.js';
import { SpliceService } from '../service/splice-service.js';
import { versionInfo } from '../service/version.js';
import { reserveLegPorts } from '../splice/leg-ports.js';
import { Splicer } from '../splice/splicer.js';
import { type Sweeper, startSweeper } from '../splice/sweeper.js';
import { createSocketOps } from '../tcp/socket-ops.js';
import { closeSharedSocketProbe, sharedSocketProbe } from '../tcp/socket-probe.js';
import { listenOnSocket, prepareApiDir, resolveGroup } from './api-socket.js';
import { checkApiAuth, checkRunnable, type DaemonConfig, handoffSocketPath, loadConfig } from './config.js';
import { applyHostSettings, type HostLog, restoreHostSettings } from './host-settings.js';
import type { RestoreStep } from './host-settings-plan.js';
import { mapIdOf, ownersToSave, readOwners, restoreOwners, saveOwners } from './owners.js';
import {
  type Attachment,
  attachOrReuse,
  linkPinPath,
  preparePinDir,
  type TeardownResult,
  teardownPins,
} from './pins.js';

export interface RunOptions {
  /** Install SIGTERM/SIGINT handlers that shut down and exit (the CLI); tests call close() instead. */
  handleSignals?: boolean;
  /** How long a graceful shutdown may take before the process exits anyway (ms). */
  graceMs?: number;
}

export interface RunningDaemon {
  config: DaemonConfig;
  /** "host:port" or the unix socket path the API listens on. */
  apiAddress: string;
  /** "host:port" of the metrics listener, when enabled. */
  metricsAddress: string | undefined;
  /** The local handoff channel's socket, when it listens. */
  handoffAddress: string | undefined;
  attachments: Attachment[];
  /** Connections rebuilt from the pinned table at start. */
  adopted: number;
  service: SpliceService;
  /** Graceful stop; the datapath stays loaded and attached. */
  close(): Promise<void>;
}

export const DEFAULT_GRACE_MS = 10_000;

/** Starts the daemon from `baton lb` arguments and the environment. */
export async function runDaemon(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: RunOptions = {},
): Promise<RunningDaemon> {
  const config = loadConfig(argv, env);
  checkRunnable(config);
  return startDaemon(config, opts);
}

export async function startDaemon(config: DaemonConfig, opts: RunOptions = {}): Promise<RunningDaemon> {
  checkApiAuth(config); // never a TCP listener without a token, however the config was made
  // The socket's directory first, before anything else (the state dir) can create it with looser modes.
  const apiGid =
    'path' in config.api
      ? config.apiGroup !== undefined
        ? resolveGroup(config.apiGroup)
        : (process.getgid?.() ?? 0)
      : undefined;
  if ('path' in config.api && apiGid !== undefined) prepareApiDir(config.api.path, apiGid);
  preparePinDir(config.pinDir);
  // Migrate mode's secret before anything is loaded: a bad file fails the start, not the first migration.
  const agentSecret =
    config.agents.length > 0 ? readSecretFile(config.agentSecretFile as string, '--agent-secret-file') : undefined;
  const dp = await Datapath.load({
    flowsCapacity: config.tableCapacity,
    pinDir: config.pinDir,
    ...(config.objectPath ? { objectPath: config.objectPath } : {}),
    ...(config.bpfDir ? { bpfDir: config.bpfDir } : {}),
  });
  const attachments: Attachment[] = [];
  let app: FastifyInstance | undefined;
  let handoff: HandoffServer | undefined;
  let metricsServer: MetricsServer | undefined;
  let sweeper: Sweeper | undefined;
  let lbCluster: LbCluster | undefined;
  let closeMigrations: (() => void) | undefined;
  const releaseDatapath = () => {
    sweeper?.stop();
    closeMigrations?.();
    for (const a of attachments.splice(0)) a.link.release(); // the pin keeps the attachment
    forgetProfileRecords();
    dp.close({ keepPinned: true });
  };
  try {
    for (const ifname of config.interfaces) attachments.push(attachOrReuse(dp, ifname, config.pinDir));
    // Loading the socket probe takes tens of ms: do it now, not in the first splice.
    await sharedSocketProbe({ objectPath: config.probeObjectPath, bpfDir: config.bpfDir });
    // Leg ports: reserved in this namespace first, so the kernel never hands
    // one to connect() or bind(0) while a spliced leg's entry holds its tuple.
    if (config.legPorts) reserveLegPorts(config.legPorts);
    const splicer = new Splicer(dp, createSocketOps(), config.legPorts ? { legPorts: config.legPorts } : {});
    const adopted = await splicer.adopt();
    // Adopted connections belong to root unless the previous daemon saved their owners.
    const tableId = mapIdOf(dp.table.layout.fd);
    const owned = restoreOwners(readOwners(config.stateDir, tableId), tableId, splicer.records);

    let attached = true;
    const metrics = new BatonMetrics({
      counters: () => dp.readCountersByDirection(),
      tableCapacity: config.tableCapacity,
    });
    // Operations (issue 12): a drain refuses new splices and migrations, and reports when nothing is left.
    let migrations: MigrateService | undefined; // made below; the drain counts its forwarded connections
    const drain: Drain = new Drain({
      // Migrated connections count too: this LB forwards their client segments until they are reclaimed.
      held: (): number => splicer.records.size + service.inFlightCount + (migrations?.forwarded ?? 0),
      onDrained: () => app?.log.info({ drain: 'drained' }, 'drained: this LB holds no connection any more'),
    });
    splicer.records.listen({ added: () => {}, removed: () => drain.check() });
    drainMetrics(metrics.registry, () => drain.check());
    let clusterStatus = async (): Promise<ClusterStatusJson> => aloneStatus(splicer.records.size, drain.check());
    const service: SpliceService = new SpliceService({
      splicer,
      admission: () => drain.refusal(),
      observer: metrics,
      tableCapacity: config.tableCapacity,
      notReadyReason: () => {
        if (!attached) return 'the datapath is detached';
        // `baton down` (or a hand-removed pin) while we run: the links are gone.
        const gone = attachments.filter((a) => !existsSync(linkPinPath(config.pinDir, a.ifindex)));
        return gone.length
          ? `XDP link pins missing for ${gone.map((a) => a.ifname).join(', ')} (was baton down run?); restart baton lb to attach again`
          : undefined;
      },
    });
    metrics.watch(service);
    // Migrate mode (--agent): flow ids and MIGRATED entries in this LB's table, one channel per agent.
    // The migrations an earlier daemon made keep forwarding (pinned table); this one tracks and reclaims them.
    const flowSwitch = agentSecret
      ? new FlowIdSwitch(dp.table, (config.migrateAddress ?? config.clusterAddress) as string)
      : undefined;
    const migratedAdopted = flowSwitch?.adopt();
    migrations = new MigrateService({
      agents: config.agents,
      operations: service.operations,
      admission: () => drain.refusal(),
      ...(agentSecret && flowSwitch ? { secret: agentSecret, flowSwitch } : {}),
    });
    closeMigrations = () => migrations.close();
    migrations.warm();
    metrics.watchMigrations(migrations);
    sweeper = startSweeper(splicer, { idleMs: config.idleTimeoutMs });
    sweeper.onReclaim = (_id, reason) => metrics.reclaimed(reason);

    app = await buildApi({
      service,
      migrations,
      ...(config.token ? { token: config.token } : {}),
      ...(config.insecureNoAuth ? { insecureNoAuth: true } : {}),
      ...(config.rateLimit > 0 ? { rateLimit: { max: config.rateLimit, timeWindowMs: 1000 } } : {}),
      logger: { level: config.logLevel },
      observer: metrics,
      drain,
      clusterStatus: () => clusterStatus(),
      onDrain: (what, caller) =>
        app?.log.warn({ drain: what, caller }, `drain ${what === 'start' ? 'started' : 'cancelled'}`),
    });
    if (config.store !== undefined) {
      // Owner forwarding on: headers go out from (and are accepted by peers
      // from) the cluster address; segments for the VIPs that match nothing
      // get a second chance at a peer.
      const address = config.clusterAddress as string;
      dp.owner.settings.configure({
        ...(address.includes(':') ? { local6: address } : { local4: address }),
        udpPort: config.ownerPort,
      });
      // The maps are pinned: what an earlier daemon configured stays unless changed here.
      for (const vip of dp.owner.vips.list()) if (!config.vips.includes(vip)) dp.owner.vips.remove(vip);
      for (const vip of config.vips) dp.owner.vips.add(vip);
      const log = app.log;
      const owners = datapathOwners(dp.table, dp.owner, (err) =>
        log.warn({ err, code: err.code, reason: err.reason }, err.message),
      );
      // Before the API listens: the connections adopted above are published
      // first, and every splice from now on is published as it is made.
      lbCluster = await startLbCluster({
        storeUrl: config.store,
        self: config.clusterId,
        info: {
          address: config.clusterAddress as string,
          ownerPort: config.ownerPort,
          version: versionInfo().version,
          ttlMs: config.peerTtlMs,
        },
        peerTtlMs: config.peerTtlMs,
        records: splicer.records,
        entries: owners,
        forwardedCount: () => owners.installedCount,
        onPeers: (peers) => owners.setPeers(peers),
        registry: metrics.registry,
        log: app.log,
      });
      peerTrafficMetrics(metrics.registry, () => owners.peerTraffic());
      clusterStatus = lbClusterStatus({
        self: { id: config.clusterId, address: config.clusterAddress as string, ownerPort: config.ownerPort },
        lb: lbCluster,
        forwarded: () => owners.installedCount,
        traffic: () => owners.peerTraffic(),
        owned: () => splicer.records.size,
        drain: () => drain.check(),
      });
      app.log.info(
        { store: lbCluster.store.kind, clusterId: config.clusterId, peers: lbCluster.cluster.peers().size },
        `joined the cluster as ${config.clusterId}`,
      );
    } else {
      // Alone: nothing is forwarded to peers, even if an earlier daemon (pinned maps) was in a cluster.
      dp.owner.settings.disable();
    }
    // Before the API listens, so before any splice can need them; an earlier
    // daemon's record is reused, so a restart keeps the operator's old values.
    applyHostSettings(config.interfaces, { stateDir: config.stateDir, pinDir: config.pinDir, log: app.log });
    let apiAddress: string;
    if ('path' in config.api) {
      const { path } = config.api;
      const server = app;
      await listenOnSocket(path, apiGid as number, () => server.listen({ path })); // 0660, group --api-group
      apiAddress = path;
    } else {
      apiAddress = await app.listen({ host: config.api.host, port: config.api.port });
      apiAddress = apiAddress.replace(/^http:\/\//, '');
    }
    const handoffPath = handoffSocketPath(config);
    if (handoffPath !== undefined) {
      // Same directory, mode and group as the API socket; the same authorizer and service behind it.
      const log = app.log;
      handoff = await HandoffServer.listen({
        service,
        ...(migrations ? { migrations } : {}),
        path: handoffPath,
        gid: apiGid ?? process.getgid?.() ?? 0,
        onProtocolError: (err, cred) =>
          log.warn({ code: err.code, reason: err.reason, peer: cred }, `handoff channel: ${err.message}`),
      });
    }
    if (config.metrics) metricsServer = await serveMetrics(metrics, config.metrics);
    if (config.insecureNoAuth) app.log.warn({ api: apiAddress, insecureNoAuth: true }, `INSECURE: ${INSECURE_WARNING}`);

    app.log.info(
      {
        interfaces: attachments.map((a) => ({ name: a.ifname, ifindex: a.ifindex, reused: a.reused })),
        pinDir: config.pinDir,
        adopted,
        ...(migratedAdopted ? { migratedAdopted } : {}),
        ownersRestored: owned,
        api: apiAddress,
        handoff: handoff?.path,
        metrics: metricsServer?.address,
      },
      `baton lb ready: ${attachments.length} interface(s), ${adopted} connection(s) recovered`,
    );

    const running = app;
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        await service.drain(); // new splices and migrations get SHUTTING_DOWN; those under way finish
        await splicer.settled(); // and the work they left in the background (pending bytes acknowledged)
        await handoff?.close();
        await running.close();
        // The connections keep flowing through this LB's datapath: peers keep
        // forwarding to it, and the next daemon refreshes the registration.
        await lbCluster?.close().catch((err: unknown) => running.log.error({ err }, 'leaving the cluster failed'));
        await metricsServer?.close();
        // No request runs any more: the owners are final. The next daemon gives them back to the connections it adopts.
        try {
          saveOwners(config.stateDir, ownersToSave(tableId, splicer.records.values()));
        } catch (err) {
          running.log.error({ err }, "could not save the connections' owners: after the restart they belong to root");
        }
        attached = false;
        releaseDatapath();
        await closeSharedSocketProbe();
        if ('path' in config.api) rmSync(config.api.path, { force: true });
        if (handoff) rmSync(handoff.path, { force: true });
      })());

    if (opts.handleSignals) {
      closeWithGrace(
        { delay: opts.graceMs ?? DEFAULT_GRACE_MS, logger: { error: (m: unknown) => running.log.error(m) } },
        async ({ signal, err }) => {
          if (err) running.log.error({ err }, 'fatal error, shutting down');
          else running.log.info(`${signal ?? 'exit'}: shutting down (the datapath stays attached)`);
          await close();
        },
      );
    }

    return {
      config,
      apiAddress,
      metricsAddress: metricsServer?.address,
      handoffAddress: handoff?.path,
      attachments,
      adopted,
      service,
      close,
    };
  } catch (e) {
    await handoff?.close().catch(() => {});
    await lbCluster?.close().catch(() => {});
    await app?.close().catch(() => {});
    await metricsServer?.close().catch(() => {});
    releaseDatapath();
    throw e;
  }
}

/**
 * `baton down`: detaches the pinned XDP links and removes the pinned maps
 * under the pin directory, then restores the host settings baton changed
 * (after the detach: the datapath needs them while it forwards).
 */
export function teardown(
  config: Pick<DaemonConfig, 'pinDir' | 'stateDir'>,
  log?: HostLog,
): TeardownResult & { sysctls: RestoreStep[] } {
  const pins = teardownPins(config.pinDir);
  const { steps } = restoreHostSettings({ stateDir: config.stateDir, pinDir: config.pinDir, ...(log ? { log } : {}) });
  return { ...pins, sysctls: steps };
}
