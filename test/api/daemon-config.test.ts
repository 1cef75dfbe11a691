/** `baton lb` configuration: defaults, precedence (file < env < flags), and errors that say what to do. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  checkApiAuth,
  checkRunnable,
  configHelp,
  handoffSocketPath,
  loadConfig,
  OPTIONS,
} from '../../control/daemon/config.js';
import { parseDuration, parseListen } from '../../control/daemon/options.js';
import { DEFAULT_FLOWS_CAPACITY } from '../../control/datapath/datapath.js';
import { BatonError } from '../../control/errors.js';
import { SWEEPER_DEFAULTS } from '../../control/splice/sweeper.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
const file = (name: string, content: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
};

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BatonError, `a BatonError, got ${String(e)}`);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.match(e.message, re);
    return true;
  });
}

describe('daemon configuration', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("defaults: API on the unix socket, loopback metrics, bpffs pin dir, the datapath's table capacity", () => {
    const c = loadConfig([], {});
    assert.deepEqual(c.api, { path: '/run/baton/api.sock' });
    assert.equal(c.apiGroup, undefined);
    assert.equal(c.insecureNoAuth, false);
    assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9300 });
    assert.equal(c.pinDir, '/sys/fs/bpf/baton');
    assert.equal(c.tableCapacity, DEFAULT_FLOWS_CAPACITY);
    assert.equal(c.token, undefined);
    assert.deepEqual(c.interfaces, []);
    assert.equal(c.idleTimeoutMs, SWEEPER_DEFAULTS.idleMs);
  });

  test('precedence: file < environment < flags', () => {
    const cfg = file('p.json', {
      interfaces: ['eth0'],
      tableCapacity: 100,
      api: '127.0.0.1:8000',
      idleTimeoutMs: '1m',
      token: 'file-token-0123456789',
    });
    const c = loadConfig(['--config', cfg, '--table-capacity', '300', '-i', 'eth2', '-i', 'eth3'], {
      BATON_TABLE_CAPACITY: '200',
      BATON_API: 'unix:/run/baton.sock',
      BATON_INTERFACES: 'eth1',
    });
    assert.equal(c.tableCapacity, 300, 'flag over env over file');
    assert.deepEqual(c.api, { path: '/run/baton.sock' }, 'env over file');
    assert.deepEqual(c.interfaces, ['eth2', 'eth3'], 'repeated flag');
    assert.equal(c.idleTimeoutMs, 60_000, 'from the file');
    assert.equal(c.token, 'file-token-0123456789');
    assert.deepEqual(loadConfig([], { BATON_CONFIG: cfg, BATON_INTERFACES: 'a,b , c' }).interfaces, ['a', 'b', 'c']);
  });

  test('values: durations, listen addresses, metrics off, IPv6', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('0'), 0);
    assert.deepEqual(parseListen('[::1]:7300'), { host: '::1', port: 7300 });
    assert.deepEqual(parseListen('/run/b.sock'), { path: '/run/b.sock' });
    assert.equal(loadConfig(['--metrics', 'off'], {}).metrics, false);
    assert.equal(loadConfig(['--rate-limit', '0'], {}).rateLimit, 0);
  });

  test('errors name the source, the value and what is accepted', () => {
    rejects(() => loadConfig(['--table-capacity', 'lots'], {}), /--table-capacity: "lots": expected an integer 1\.\./);
    rejects(() => loadConfig([], { BATON_TABLE_CAPACITY: '0' }), /BATON_TABLE_CAPACITY: "0"/);
    rejects(() => loadConfig(['--api', 'localhost'], {}), /--api.*host:port.*unix/);
    rejects(() => loadConfig(['--idle-timeout', '5 minutes'], {}), /--idle-timeout.*duration/);
    rejects(() => loadConfig(['--token', 'short'], {}), /--token.*16 characters/);
    rejects(() => loadConfig(['--log-level', 'loud'], {}), /one of fatal, error/);
    rejects(() => loadConfig(['--pin-dir', 'relative/dir'], {}), /absolute path/);
    rejects(() => loadConfig(['-i', 'bad name!'], {}), /not an interface name/);
    rejects(() => loadConfig(['--bogus'], {}), /bogus.*baton lb --help/);
    rejects(() => loadConfig(['--config', join(dir, 'missing.json')], {}), /missing\.json: no such file/);
    rejects(() => loadConfig(['--config', file('bad.json', '{nope')], {}), /bad\.json/);
    rejects(() => loadConfig(['--config', file('arr.json', [1])], {}), /JSON object of settings/);
    rejects(
      () => loadConfig(['--config', file('unknown.json', { interfacez: ['x'] })], {}),
      /unknown setting "interfacez"; known: interfaces/,
    );
    rejects(
      () => loadConfig(['--config', file('type.json', { interfaces: 'eth0' })], {}),
      /"interfaces": expected an array/,
    );
    rejects(
      () => loadConfig(['--config', file('obj.json', { tableCapacity: { n: 1 } })], {}),
      /"tableCapacity": expected a string or a number/,
    );
    rejects(() => checkRunnable(loadConfig([], {})), /no interface to attach to.*--interface/);
  });

  test('--help is generated from the option table: every flag, env variable and default', () => {
    const help = configHelp();
    for (const o of Object.values(OPTIONS)) {
      assert.ok(help.includes(`--${o.flag}`), `--${o.flag} in help`);
      assert.ok(help.includes(o.env), `${o.env} in help`);
    }
    assert.match(help, /default: unix:\/run\/baton\/api\.sock/);
    assert.match(help, /--insecure-no-auth\n/, 'a flag without a value');
  });

  test('a TCP API needs a token: refused at validation, with what to do', () => {
    const tcp = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
      loadConfig(['-i', 'eth0', '--api', '127.0.0.1:7300', ...argv], env);
    rejects(
      () => checkRunnable(tcp([])),
      /TCP 127\.0\.0\.1:7300 without a token.*BATON_TOKEN.*--token.*unix:\/run\/baton\/api\.sock.*--insecure-no-auth/,
    );
    rejects(
      () => checkRunnable(loadConfig(['-i', 'eth0', '--api', '[::1]:7300'], {})),
      /TCP \[::1\]:7300 without a token/,
    );
    assert.doesNotThrow(() => checkRunnable(tcp(['--token', 'a-token-of-16-chars'])));
    assert.doesNotThrow(() => checkRunnable(tcp([], { BATON_TOKEN: 'a-token-of-16-chars' })));
    assert.doesNotThrow(() => checkRunnable(tcp(['--insecure-no-auth'])), 'labs may, explicitly');
    assert.equal(tcp([], { BATON_INSECURE_NO_AUTH: 'true' }).insecureNoAuth, true);
    assert.equal(loadConfig(['--config', file('insecure.json', { insecureNoAuth: true })], {}).insecureNoAuth, true);
    rejects(
      () => loadConfig([], { BATON_INSECURE_NO_AUTH: 'maybe' }),
      /BATON_INSECURE_NO_AUTH: "maybe": expected true or false/,
    );
    rejects(
      () => loadConfig(['--config', file('insecure-str.json', { insecureNoAuth: 'yes' })], {}),
      /"insecureNoAuth": expected true or false/,
    );
    rejects(() => checkRunnable(tcp(['--insecure-no-auth', '--token', 'a-token-of-16-chars'])), /contradict/);
    rejects(() => checkRunnable(loadConfig(['-i', 'eth0', '--insecure-no-auth'], {})), /applies to a TCP --api only/);
    rejects(
      () => checkRunnable(tcp(['--token', 'a-token-of-16-chars', '--api-group', 'baton'])),
      /--api-group applies to a unix socket API/,
    );
    assert.throws(
      () => checkApiAuth(tcp([])),
      (err: unknown) => err instanceof BatonError && err.reason === 'tcp_without_token',
      'a stable reason',
    );
    assert.doesNotThrow(() => checkRunnable(loadConfig(['-i', 'eth0'], {})), 'the default unix socket needs no token');
  });

  test('--api-group: a group name or a numeric gid', () => {
    assert.equal(loadConfig(['--api-group', 'baton'], {}).apiGroup, 'baton');
    assert.equal(loadConfig([], { BATON_API_GROUP: '998' }).apiGroup, '998');
    rejects(() => loadConfig(['--api-group', 'no such'], {}), /--api-group.*group name or a numeric gid/);
  });

  test('--handoff-socket: beside the unix API socket by default, a path or off; file < env < flag; in --help', () => {
    assert.equal(handoffSocketPath(loadConfig([], {})), '/run/baton/handoff.sock');
    assert.equal(handoffSocketPath(loadConfig(['--api', 'unix:/srv/b/api.sock'], {})), '/srv/b/handoff.sock');
    assert.equal(
      handoffSocketPath(loadConfig(['--api', '127.0.0.1:7300', '--token', 'a-token-of-16-chars'], {})),
      undefined,
      'none with a TCP API unless named',
    );
    assert.equal(handoffSocketPath(loadConfig(['--handoff-socket', 'off'], {})), undefined);
    const cfg = file('h.json', { handoffSocket: '/from/file.sock' });
    assert.equal(loadConfig(['--config', cfg], {}).handoffSocket, '/from/file.sock');
    assert.equal(
      loadConfig(['--config', cfg], { BATON_HANDOFF_SOCKET: 'unix:/from/env.sock' }).handoffSocket,
      '/from/env.sock',
      'env over file',
    );
    assert.equal(
      loadConfig(['--config', cfg, '--handoff-socket', '/from/flag.sock'], { BATON_HANDOFF_SOCKET: '/from/env.sock' })
        .handoffSocket,
      '/from/flag.sock',
      'flag over env',
    );
    assert.equal(loadConfig(['--config', file('h2.json', { handoffSocket: false })], {}).handoffSocket, false);
    rejects(() => loadConfig(['--handoff-socket', 'relative.sock'], {}), /--handoff-socket.*absolute path.*or off/);
    rejects(
      () => checkRunnable(loadConfig(['-i', 'eth0', '--handoff-socket', '/run/baton/api.sock'], {})),
      /names the API's own socket/,
    );
    assert.match(
      configHelp(),
      /--handoff-socket <value>\n\s+local handoff channel.*\n\s+env BATON_HANDOFF_SOCKET, config file "handoffSocket"/,
    );
  });

  test('--leg-ports: 61000-65535 by default, a range or off from flag, env or file; a bad range says what is accepted', () => {
    assert.deepEqual(loadConfig([], {}).legPorts, { lo: 61000, hi: 65535 });
    assert.deepEqual(loadConfig(['--leg-ports', '62000-62999'], {}).legPorts, { lo: 62000, hi: 62999 });
    assert.equal(loadConfig([], { BATON_LEG_PORTS: 'off' }).legPorts, false);
    assert.equal(loadConfig(['--config', file('legs.json', '{"legPorts": false}')], {}).legPorts, false);
    assert.deepEqual(loadConfig(['--config', file('legs2.json', '{"legPorts": "61000-61999"}')], {}).legPorts, {
      lo: 61000,
      hi: 61999,
    });
    rejects(() => loadConfig(['--leg-ports', '65000-61000'], {}), /--leg-ports.*lo-hi.*or off/);
    rejects(() => loadConfig(['--leg-ports', 'many'], {}), /--leg-ports.*not a port range/);
  });

  test('cluster settings: --store is checked at load, needs --cluster-address, and the TTL is bounded', () => {
    const c = loadConfig(
      ['-i', 'eth0', '--store', 'redis://198.18.0.1:6379', '--cluster-address', '198.18.0.2', '--peer-ttl', '2s'],
      {},
    );
    assert.deepEqual(
      [c.store, c.clusterAddress, c.peerTtlMs, c.ownerPort],
      ['redis://198.18.0.1:6379', '198.18.0.2', 2000, 6181],
    );
    assert.ok(c.clusterId.length > 0, 'the cluster id defaults to the host name');
    assert.equal(loadConfig([], {}).store, undefined, 'without --store an LB runs alone');
    rejects(() => loadConfig(['--store', 'http://x'], {}), /--store.*unknown scheme http/);
    rejects(() => loadConfig(['--peer-ttl', '10ms'], {}), /--peer-ttl.*expected 50 ms \.\. 10 min/);
    rejects(() => loadConfig(['--cluster-address', 'lb1.example'], {}), /--cluster-address.*IPv4 or IPv6 address/);
    rejects(() => loadConfig(['--cluster-id', 'has blank'], {}), /--cluster-id.*printable ASCII/);
    assert.throws(
      () => checkRunnable(loadConfig(['-i', 'eth0', '--store', 'redis://198.18.0.1'], {})),
      (err: unknown) =>
        err instanceof BatonError && err.reason === 'no_cluster_address' && /--cluster-address/.test(err.message),
    );
  });

  test('migrate settings: --agent (repeatable, canonical ip:port) needs --agent-secret-file and an LB address', () => {
    const c = loadConfig(
      [
        '-i',
        'eth0',
        '--agent',
        '198.18.3.2:7400',
        '--agent',
        '[2001:db8:3:0::2]:7400',
        '--agent-secret-file',
        '/etc/baton/peer.secret',
        '--migrate-address',
        '198.18.2.2',
      ],
      {},
    );
    assert.deepEqual(c.agents, ['198.18.3.2:7400', '[2001:db8:3::2]:7400']);
    assert.deepEqual([c.agentSecretFile, c.migrateAddress], ['/etc/baton/peer.secret', '198.18.2.2']);
    checkRunnable(c);
    assert.deepEqual(loadConfig([], { BATON_AGENTS: '198.18.3.2:7400,198.18.4.2:7400' }).agents.length, 2);
    assert.deepEqual(loadConfig([], {}).agents, [], 'without --agent an LB migrates nothing');
    rejects(() => loadConfig(['--agent', 'backend1:7400'], {}), /--agent/);
    rejects(() => loadConfig(['--agent-secret-file', 'peer.secret'], {}), /--agent-secret-file.*absolute path/);
    const reason = (argv: string[]) => {
      try {
        checkRunnable(loadConfig(['-i', 'eth0', ...argv], {}));
        return 'ok';
      } catch (e) {
        return e instanceof BatonError ? `${e.reason}: ${/--[a-z-]+/.exec(e.message)?.[0]}` : String(e);
      }
    };
    assert.equal(reason(['--agent', '198.18.3.2:7400', '--migrate-address', '198.18.2.2']), 'no_agent_secret: --agent');
    assert.equal(reason(['--agent', '198.18.3.2:7400', '--agent-secret-file', '/s']), 'no_migrate_address: --agent');
    assert.equal(
      reason(['--agent', '198.18.3.2:7400', '--agent-secret-file', '/s', '--cluster-address', '198.18.2.2']),
      'ok',
      'the cluster address serves as the LB address',
    );
  });
});
