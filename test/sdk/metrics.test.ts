/** The SDK's exposition parser and histogram quantiles (what `baton metrics` and the demo print). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { histogramQuantile, parseExposition, sumSamples } from '../../control/sdk/metrics.js';

test('parses prom-client output: families, types, labels with escapes, +Inf', async () => {
  const reg = new Registry();
  const c = new Counter({
    name: 'baton_test_packets_total',
    help: 'packets',
    labelNames: ['reason'],
    registers: [reg],
  });
  c.inc({ reason: 'a "quoted"\\reason' }, 3);
  c.inc({ reason: 'plain' }, 4);
  const h = new Histogram({
    name: 'baton_test_duration_seconds',
    help: 'd',
    buckets: [0.001, 0.01, 0.1],
    registers: [reg],
  });
  for (const v of [0.0005, 0.0005, 0.005, 0.05]) h.observe(v);
  const fams = parseExposition(await reg.metrics());
  const counter = fams.find((f) => f.name === 'baton_test_packets_total')!;
  assert.equal(counter.type, 'counter');
  assert.equal(counter.help, 'packets');
  assert.deepEqual(counter.samples.map((s) => s.labels.reason).sort(), ['a "quoted"\\reason', 'plain']);
  assert.equal(sumSamples(counter), 7);
  assert.equal(sumSamples(counter, { reason: 'plain' }), 4);
  const hist = fams.find((f) => f.name === 'baton_test_duration_seconds')!;
  assert.equal(hist.type, 'histogram');
  assert.ok(hist.samples.some((s) => s.labels.le === '+Inf' && s.value === 4));
  // 4 observations: rank 2 (p50) falls at the top of the first bucket (2 of 2 in [0, 0.001]).
  assert.equal(histogramQuantile(hist, 0.5), 0.001);
  // p75 = rank 3: the only observation in (0.001, 0.01] -> its upper edge.
  assert.ok(Math.abs(histogramQuantile(hist, 0.75)! - 0.01) < 1e-12);
  // p99 = rank 3.96, in (0.01, 0.1] with one observation: 0.01 + 0.09 * 0.96.
  assert.ok(Math.abs(histogramQuantile(hist, 0.99)! - (0.01 + 0.09 * 0.96)) < 1e-12);
});

test('an empty histogram has no quantile; a bad line is a SyntaxError', () => {
  const fams = parseExposition(
    '# TYPE x_seconds histogram\nx_seconds_bucket{le="1"} 0\nx_seconds_bucket{le="+Inf"} 0\nx_seconds_count 0\n',
  );
  assert.equal(histogramQuantile(fams[0]!, 0.5), undefined);
  assert.throws(() => parseExposition('this is not a metric line at all {'), SyntaxError);
});
