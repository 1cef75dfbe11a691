/** The dispatcher's configuration: migrate pools (mode, agentPort) are checked with messages that name the field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { channelPathOf } from '../../control/dispatcher/baton-path.js';
import { ConfigError, DEFAULT_HANDOFF_PATH, validateConfig } from '../../control/dispatcher/config.js';

const base = (pool: Record<string, unknown>) => ({
  listen: '198.18.1.1:80',
  pools: { app: { backends: ['198.18.3.2:80'], ...pool } },
  routes: [{ pool: 'app' }],
});

const rejects = (pool: Record<string, unknown>, re: RegExp) =>
  assert.throws(
    () => validateConfig(base(pool)),
    (e: unknown) => e instanceof ConfigError && re.test(e.message),
  );

test('a migrate pool: mode "migrate", the agents on the back ends\' IPs at agentPort', () => {
  const c = validateConfig(base({ mode: 'migrate', agentPort: 7400 }));
  assert.equal(c.pools.app?.mode, 'migrate');
  assert.equal(validateConfig(base({})).pools.app?.mode, undefined, 'splice by default');
  validateConfig(base({ mode: 'splice' }));
});

test('bad migrate settings name the field and what is accepted', () => {
  rejects({ mode: 'move' }, /pools\.app\.mode: expected "splice" or "migrate"/);
  rejects({ mode: 'migrate', agentPort: 70000 }, /pools\.app\.agentPort: expected 1\.\.65535/);
  rejects({ mode: 'migrate', agentPort: -1 }, /pools\.app\.agentPort: expected a non-negative integer/);
  rejects({ agentPort: 7400 }, /pools\.app\.agentPort: only migrate pools have agents/);
});

test('handoff: "channel" (default) or "rest"; the channel beside the API socket unless handoffSocket names one', () => {
  const cfg = base({});
  const bad = (extra: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => validateConfig({ ...cfg, ...extra }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  assert.equal(DEFAULT_HANDOFF_PATH, 'channel');
  assert.doesNotThrow(() => validateConfig({ ...cfg, handoff: 'rest' }));
  assert.doesNotThrow(() => validateConfig({ ...cfg, handoff: 'channel', handoffSocket: '/run/x/handoff.sock' }));
  bad({ handoff: 'http' }, /handoff: expected "channel" or "rest"/);
  bad({ handoffSocket: 'handoff.sock' }, /handoffSocket: expected an absolute path/);
  assert.equal(channelPathOf({ api: { socketPath: '/srv/baton/api.sock' } }), '/srv/baton/handoff.sock');
  assert.equal(channelPathOf({ api: { url: 'http://127.0.0.1:7300' } }), undefined, 'a TCP API: REST only');
  assert.equal(channelPathOf({ api: { url: 'http://127.0.0.1:7300' }, handoffSocket: '/h.sock' }), '/h.sock');
});
