/** The dispatcher's Prometheus metrics are the stats it keeps, read at scrape time. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DispatcherStats } from '../../control/dispatcher/dispatcher.js';
import { DispatcherMetrics } from '../../control/dispatcher/metrics.js';

const stats = (over: Partial<DispatcherStats> = {}): DispatcherStats => ({
  accepted: 0,
  spliced: 0,
  migrated: 0,
  relayed: 0,
  rejected: 0,
  byBackend: {},
  relayedFraction: 0,
  byProfile: {},
  ...over,
});

const series = (text: string, name: string): number | undefined => {
  const l = text.split('\n').find((x) => x.startsWith(`${name} `));
  return l === undefined ? undefined : Number(l.slice(name.length + 1));
};

test('outcomes, the relayed ratio, per leg profile outcomes and pool takes; the default leg is labelled "default"', async () => {
  const s = stats({
    accepted: 9,
    spliced: 5,
    migrated: 2,
    relayed: 1,
    rejected: 1,
    relayedFraction: 1 / 8,
    byProfile: {
      '': { hits: 3, misses: 0, spliced: 3, relayed: 0 },
      'no-ts,mss-536': { hits: 1, misses: 2, spliced: 2, relayed: 1 },
    },
  });
  const text = await new DispatcherMetrics(() => s, { processMetrics: false }).metrics();
  assert.equal(series(text, 'baton_dispatcher_connections_total{outcome="spliced"}'), 5);
  assert.equal(series(text, 'baton_dispatcher_connections_total{outcome="migrated"}'), 2);
  assert.equal(series(text, 'baton_dispatcher_connections_total{outcome="relayed"}'), 1);
  assert.equal(series(text, 'baton_dispatcher_connections_total{outcome="rejected"}'), 1);
  assert.equal(series(text, 'baton_dispatcher_relayed_ratio'), 1 / 8);
  assert.equal(series(text, 'baton_dispatcher_profile_connections_total{leg_profile="default",outcome="spliced"}'), 3);
  assert.equal(
    series(text, 'baton_dispatcher_profile_connections_total{leg_profile="no-ts,mss-536",outcome="relayed"}'),
    1,
  );
  assert.equal(series(text, 'baton_dispatcher_pool_takes_total{leg_profile="no-ts,mss-536",result="miss"}'), 2);
  assert.equal(series(text, 'baton_dispatcher_pool_takes_total{leg_profile="default",result="hit"}'), 3);
  assert.doesNotMatch(text, /\d+\.\d+\.\d+\.\d+/, 'no address in any label');
});

test('counters follow the running totals across scrapes and a ratio of 0 before any connection', async () => {
  let s = stats();
  const m = new DispatcherMetrics(() => s, { processMetrics: false });
  const first = await m.metrics();
  assert.equal(series(first, 'baton_dispatcher_relayed_ratio'), 0);
  assert.equal(series(first, 'baton_dispatcher_connections_total{outcome="spliced"}'), 0);
  s = stats({ spliced: 2, byProfile: { '': { hits: 2, misses: 0, spliced: 2, relayed: 0 } } });
  const second = await m.metrics();
  assert.equal(series(second, 'baton_dispatcher_connections_total{outcome="spliced"}'), 2);
  assert.equal(
    series(second, 'baton_dispatcher_profile_connections_total{leg_profile="default",outcome="spliced"}'),
    2,
  );
});

test('process metrics carry the dispatcher prefix', async () => {
  const text = await new DispatcherMetrics(stats).metrics();
  assert.match(text, /^baton_dispatcher_process_cpu_seconds_total /m);
});
