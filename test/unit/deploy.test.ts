/**
 * deploy/: what an operator deploys baton lb with. The example config loads
 * through the daemon's own parser, the systemd unit passes
 * `systemd-analyze verify` without a warning, the alerting rules pass
 * `promtool check rules`, and every metric the rules and the Grafana
 * dashboard query exists in baton's registry (control/metrics/metrics.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { checkRunnable, loadConfig } from '../../control/daemon/config.js';
import { BatonMetrics } from '../../control/metrics/metrics.js';

const ROOT = resolve(import.meta.dirname, '../..');
const UNIT = join(ROOT, 'deploy/systemd/baton-lb.service');
const RULES = join(ROOT, 'deploy/prometheus/baton-rules.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/baton.json');
const missing = (cmd: string, pkg: string) =>
  spawnSync(cmd, ['--version']).error ? `no ${cmd} (package ${pkg}: scripts/setup installs it)` : false;

/** Every metric family baton serves, with a histogram's series names. */
function registryNames(): Set<string> {
  const names = new Set<string>(['up']); // Prometheus's own, per scrape target
  for (const m of new BatonMetrics().registry.getMetricsAsArray()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
  }
  return names;
}

/** Metric names in a PromQL expression: baton's, the process/Node ones, and up. */
export function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"[^"]*"/g, '""');
  return [...new Set(noStrings.match(/\b(?:baton|process|nodejs)_[a-zA-Z0-9_:]*|\bup\b(?=\s*\{|\s*==|\s*$)/g) ?? [])];
}

test('metricNames finds the names, not label values or functions', () => {
  assert.deepEqual(
    metricNames('sum by (mode) (rate(baton_handoffs_total{outcome!="baton_x"}[5m])) / up{job="baton"} == 0'),
    ['baton_handoffs_total', 'up'],
  );
  assert.deepEqual(metricNames('histogram_quantile(0.5, rate(baton_handoff_duration_seconds_bucket[1m]))'), [
    'baton_handoff_duration_seconds_bucket',
  ]);
});

test('deploy/lb.example.json loads through the daemon configuration parser and is runnable', () => {
  const path = join(ROOT, 'deploy/lb.example.json');
  const cfg = loadConfig(['--config', path], {});
  assert.deepEqual(cfg.interfaces, ['eth0', 'eth1']);
  assert.deepEqual(cfg.api, { path: '/run/baton/api.sock' });
  assert.equal(cfg.idleTimeoutMs, 30 * 60_000);
  checkRunnable(cfg);
  // Every key is a setting of config.ts (an unknown one would be CONFIG_INVALID above); none is left out by accident.
  const keys = Object.keys(JSON.parse(readFileSync(path, 'utf8')) as object);
  for (const k of ['interfaces', 'pinDir', 'api', 'metrics', 'tableCapacity']) assert.ok(keys.includes(k), k);
});

test('the systemd unit runs baton lb with the config file, never baton down on stop, and keeps /run/baton', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const directives = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
  const get = (k: string) => directives.filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1));
  assert.deepEqual(get('ExecStart'), ['/usr/bin/baton lb --config /etc/baton/lb.json']);
  assert.deepEqual(get('ExecStopPost'), [], 'pins must survive a stop or restart');
  assert.deepEqual(get('ExecStop'), []);
  assert.deepEqual(get('Type'), ['exec'], 'the daemon does not speak sd_notify');
  assert.deepEqual(get('RuntimeDirectory'), ['baton']);
  assert.deepEqual(get('RuntimeDirectoryMode'), ['0750']);
  assert.deepEqual(
    get('RuntimeDirectoryPreserve'),
    ['yes'],
    'the host-settings record baton down restores lives there',
  );
  const caps = get('CapabilityBoundingSet')[0]?.split(/\s+/) ?? [];
  for (const c of ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_NET_RAW'])
    assert.ok(caps.includes(c), c);
  assert.deepEqual(get('ProtectKernelTunables'), [], 'baton writes per-interface sysctls');
});

test('systemd-analyze verify accepts the unit without a warning', {
  skip: missing('systemd-analyze', 'systemd'),
}, () => {
  // verify also checks that ExecStart's binary exists: /usr/bin/baton is where
  // `npm install -g` puts it, absent on a build machine; the checkout's
  // bin/baton (the same CLI) stands in for it. Nothing else is changed.
  const dir = mkdtempSync(join(tmpdir(), 'baton-unit-'));
  try {
    const copy = join(dir, 'baton-lb.service');
    writeFileSync(copy, readFileSync(UNIT, 'utf8').replaceAll('/usr/bin/baton', join(ROOT, 'bin/baton')));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no warnings');
    // And it can fail: a bad directive is reported.
    writeFileSync(copy, readFileSync(copy, 'utf8').replace('Type=exec', 'Type=exec\nRestrictNamespaces=bogus'));
    const bad = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8', timeout: 30_000 });
    assert.match(`${bad.stdout}${bad.stderr}`, /:\d+: Failed to parse .*bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('promtool check rules accepts the alerting rules', { skip: missing('promtool', 'prometheus') }, () => {
  const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /SUCCESS: \d+ rules found/);
});

test('the rules cover daemon down, table pressure, refused splices and drops by reason, with metrics baton has', () => {
  const text = readFileSync(RULES, 'utf8');
  const exprs = [...text.matchAll(/expr: (\|\n(?:\s{10,}.*\n)+|.*)/g)].map((m) => m[1]!.replace(/^\|\n/, ''));
  assert.ok(exprs.length >= 4, `${exprs.length} rules`);
  const names = registryNames();
  const used = new Set(exprs.flatMap(metricNames));
  for (const n of used) assert.ok(names.has(n), `${n} is not a metric of control/metrics/metrics.ts`);
  assert.ok(
    exprs.some((e) => /up\{job="baton"\} == 0/.test(e)),
    'daemon down',
  );
  assert.ok(
    exprs.some((e) => e.includes('baton_table_pressure_ratio')),
    'table pressure',
  );
  assert.ok(
    exprs.some((e) => /baton_handoffs_total\{outcome!="ok"\}/.test(e)),
    'refused splices',
  );
  assert.ok(
    exprs.some((e) => /sum by \(instance, reason\) \(rate\(baton_datapath_packets_total\{action="dropped"/.test(e)),
    'drops by reason',
  );
});

test("every metric the Grafana dashboard queries exists in baton's registry", () => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    panels: { title: string; targets?: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };
  const names = registryNames();
  const exprs = d.panels.flatMap((p) => {
    assert.ok(p.targets?.length, `panel ${p.title} has queries`);
    return p.targets!.map((t) => ({ panel: p.title, expr: t.expr }));
  });
  for (const v of d.templating.list)
    if (typeof v.query === 'string' && v.query.startsWith('label_values'))
      exprs.push({ panel: 'variable', expr: v.query });
  const used = new Set<string>();
  for (const { panel, expr } of exprs) {
    const ms = metricNames(expr);
    assert.ok(ms.length > 0, `${panel}: no metric in ${expr}`);
    for (const m of ms) {
      assert.ok(names.has(m), `${panel}: ${m} is not a metric of control/metrics/metrics.ts`);
      used.add(m);
    }
  }
  // The dashboard shows each of baton's own families.
  for (const n of names) {
    if (!n.startsWith('baton_') || /_(bucket|sum|count)$/.test(n)) continue;
    assert.ok(
      [n, `${n}_bucket`, `${n}_sum`].some((x) => used.has(x)),
      `${n} has no panel`,
    );
  }
});
