/**
 * The dispatcher as a process (what the demo starts in the LB namespace):
 *   node --import tsx control/dispatcher/main.ts --config <file.json | '{...json}'>
 * Prints one JSON event per line on stdout ({"event":"ready"...} first,
 * then "spliced" / "relayed" / "rejected" / "closed" per connection); stats
 * on SIGUSR2 ({"event":"stats",...}); with "metrics" in the config, the same
 * figures on GET /metrics ({"event":"metrics","address":...} once it
 * listens). Exits on SIGTERM/SIGINT. baton's API
 * comes from the config's "api", else BATON_API / BATON_TOKEN.
 */
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { type MetricsServer, serveMetrics } from '../metrics/server.js';
import { ConfigError, loadConfig, parseHostPort } from './config.js';
import { createDispatcher } from './dispatcher.js';
import { DispatcherMetrics } from './metrics.js';

/**
 * Events of one event-loop tick leave in one write, and off the event
 * loop: process.stdout on a pipe writes synchronously on Linux, so a reader
 * that falls behind (a log shipper, a benchmark) stalled every connection;
 * an fs stream on fd 1 writes from libuv's thread pool, in order, and is
 * ended (flushed) before the process exits.
 */
const events = createWriteStream('', { fd: 1, autoClose: false });
let unwritten: string[] = [];
const flushEvents = (): void => {
  if (unwritten.length === 0) return;
  events.write(unwritten.join(''));
  unwritten = [];
};
const endEvents = (): Promise<void> => {
  flushEvents();
  return new Promise((resolve) => events.end(resolve));
};
const line = (o: object): void => {
  if (unwritten.push(`${JSON.stringify(o)}\n`) === 1) setImmediate(flushEvents);
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help || !values.config) {
    process.stderr.write(
      'usage: dispatcher --config <file.json | inline JSON>\n(see control/dispatcher/config.ts for the fields)\n',
    );
    return values.help ? 0 : 2;
  }
  const cfg = loadConfig(values.config);
  const d = createDispatcher(cfg, { onEvent: line });
  await d.warm(5000);
  await d.listen();
  let metrics: MetricsServer | undefined;
  if (cfg.metrics) {
    metrics = await serveMetrics(new DispatcherMetrics(() => d.stats()), parseHostPort(cfg.metrics, 'metrics'));
    line({ event: 'metrics', address: metrics.address });
  }
  process.on('SIGUSR2', () => line({ event: 'stats', ...d.stats() }));
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await metrics?.close();
  await d.close();
  line({ event: 'stopped', ...d.stats() });
  return 0;
}

main().then(
  async (code) => {
    await endEvents();
    process.exit(code);
  },
  async (e: unknown) => {
    process.stderr.write(
      `dispatcher: ${e instanceof ConfigError ? `configuration: ${e.message}` : e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    await endEvents();
    process.exit(e instanceof ConfigError ? 2 : 1);
  },
);
