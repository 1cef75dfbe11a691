/**
 * API authorization end to end: a real `baton lb` (root) on its unix socket
 * with --api-group 65534, so that uid 65534 (nobody) may connect; callers run
 * as 65534 through setpriv. A root dispatcher and a dispatcher running as
 * 65534 in the LB namespace each splice a held keep-alive connection.
 * nobody: 403 FORBIDDEN_PROCESS for the root dispatcher's descriptors,
 * cannot see, show, hand off or abort root's splice, and its own dispatcher's
 * splice succeeds, is listed as its own and is aborted by it. A TCP listener
 * without a token refuses to start.
 */
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { asUser, type DaemonProc, type DispatcherProc, NODE_CLI, startDaemon, startDispatcher } from '../lib/baton.js';
import { skipUnlessBpf } from '../lib/env.js';
import { KeepAliveClient } from '../lib/keepalive-client.js';
import { type NginxBackend, startNginx } from '../lib/nginx.js';
import { createTestbed, starTopology, type Testbed, VIP4 } from '../lib/testbed.js';

const NOBODY = 65534;
const SOCKET_DIR = `/run/baton-authz-${process.pid}`;
const SOCKET = `${SOCKET_DIR}/api.sock`;

interface SpliceJson {
  id: string;
  ownerUid: number;
}

describe('API authorization end to end (unix socket, SO_PEERCRED, uid 65534)', { skip: skipUnlessBpf }, () => {
  let tb: Testbed;
  let lb: DaemonProc;
  let nginx: NginxBackend;
  let rootFe: DispatcherProc;
  let nobodyFe: DispatcherProc;
  const clients: KeepAliveClient[] = [];

  /** The CLI as `uid` (any namespace reaches the socket; the LB's it is). */
  const cli = (uid: number | 'root', args: string[]) => {
    const argv = [...NODE_CLI, ...args, '--api', `unix:${SOCKET}`];
    const [cmd, rest] = uid === 'root' ? [argv[0] as string, argv.slice(1)] : asUser(uid, argv);
    return tb.exec('lb', cmd, rest, { check: false, timeoutMs: 30_000 });
  };
  /** One raw API request as `uid` (curl over the unix socket): status and body. */
  const api = async (uid: number, method: string, path: string, body?: unknown) => {
    const [cmd, rest] = asUser(uid, [
      'curl',
      '-sS',
      '--max-time',
      '20',
      '--unix-socket',
      SOCKET,
      '-X',
      method,
      '-w',
      '\n%{http_code}',
      ...(body ? ['-H', 'content-type: application/json', '--data', JSON.stringify(body)] : []),
      `http://baton${path}`,
    ]);
    const r = await tb.exec('lb', cmd, rest, { timeoutMs: 30_000 });
    const nl = r.stdout.lastIndexOf('\n');
    return {
      status: Number(r.stdout.slice(nl + 1)),
      body: r.stdout.slice(0, nl) ? (JSON.parse(r.stdout.slice(0, nl)) as Record<string, unknown>) : {},
    };
  };
  const ls = async (uid: number | 'root') => {
    const r = await cli(uid, ['splices', 'ls', '--all', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { items: SpliceJson[] }).items;
  };
  const splicedBy = async (fe: DispatcherProc, n: number) => {
    for (let i = 0; i < 200; i++) {
      const s = fe.events.filter((e): e is Extract<DispatchEvent, { event: 'spliced' }> => e.event === 'spliced');
      if (s.length >= n) return s;
      await sleep(25);
    }
    throw new Error(`the dispatcher made no splice: ${JSON.stringify(fe.events.slice(-3))}`);
  };
  /** A held keep-alive connection through `port` of the VIP, spliced by that port's dispatcher after its first request. */
  const connection = async (port: number) => {
    const c = await KeepAliveClient.start(tb, VIP4, port);
    clients.push(c);
    assert.equal((await c.get('/small.txt')).status, 200);
    return c;
  };

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 1, vip: true }), { passXdp: (node) => node !== 'lb' });
    lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
      ['--api-group', String(NOBODY), '--metrics', 'off'],
      { socketPath: SOCKET },
    );
    nginx = await startNginx(tb, 'backend1', 8080, { 'small.txt': 'x'.repeat(1024) });
    const cfg = (port: number) => ({
      listen: `${VIP4}:${port}`,
      api: { socketPath: SOCKET },
      pools: { one: { backends: [`${tb.node('backend1').v4}:8080`] } },
      routes: [{ pool: 'one' }],
    });
    rootFe = await startDispatcher(tb, cfg(80));
    nobodyFe = await startDispatcher(tb, cfg(8081), { uid: NOBODY }); // an unprivileged port: it cannot bind 80
  });

  after(async () => {
    for (const c of clients) c.send('QUIT');
    await nobodyFe?.stop();
    await rootFe?.stop();
    await nginx?.stop();
    await lb?.stop();
    await tb?.destroy();
    rmSync(SOCKET_DIR, { recursive: true, force: true });
  });

  test('the socket: directory 0750 and socket 0660, both of group --api-group', () => {
    const dir = statSync(SOCKET_DIR);
    const sock = statSync(SOCKET);
    assert.deepEqual([dir.mode & 0o7777, dir.uid, dir.gid], [0o750, 0, NOBODY]);
    assert.ok(sock.isSocket());
    assert.deepEqual([sock.mode & 0o7777, sock.uid, sock.gid], [0o660, 0, NOBODY]);
  });

  test("nobody: 403 FORBIDDEN_PROCESS naming a root process's descriptors; sees none of root's splices and may not touch them", async () => {
    await connection(80);
    const [rootSplice] = await splicedBy(rootFe, 1);
    assert.ok(rootSplice);
    const rootPid = Number((await tb.exec('lb', 'ss', ['-tlnpH', `sport = :80`])).stdout.match(/pid=(\d+)/)?.[1]);
    assert.ok(rootPid > 0, "the root dispatcher's pid");

    const denied = await api(NOBODY, 'POST', '/v1/splices', {
      client: { pid: rootPid, fd: 0 },
      backend: { pid: rootPid, fd: 1 },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.code, 'FORBIDDEN_PROCESS');
    assert.match(
      String(denied.body.detail),
      new RegExp(
        `you \\(uid 65534\\) may not use the sockets of pid ${rootPid} \\(uid 0\\): a caller may only name processes it could ptrace`,
      ),
    );
    const byAddr = await api(NOBODY, 'POST', '/v1/splices', {
      pid: rootPid,
      client: '198.18.1.2:1',
      vip: `${VIP4}:80`,
      backend: '198.18.2.2:8080',
    });
    assert.deepEqual([byAddr.status, byAddr.body.code], [403, 'FORBIDDEN_PROCESS']);

    assert.deepEqual(
      (await ls('root')).map((s) => [s.id, s.ownerUid]),
      [[rootSplice.id, 0]],
    );
    assert.deepEqual(await ls(NOBODY), [], "nobody lists nothing of root's");
    for (const [method, path, body] of [
      ['GET', `/v1/splices/${rootSplice.id}`, undefined],
      ['DELETE', `/v1/splices/${rootSplice.id}`, undefined],
      ['POST', `/v1/splices/${rootSplice.id}/handoffs`, { backend: `${tb.node('backend1').v4}:8080` }],
    ] as const) {
      const r = await api(NOBODY, method, path, body);
      assert.deepEqual([r.status, r.body.code], [403, 'FORBIDDEN_CONNECTION'], `${method} ${path}`);
    }
    const rm = await cli(NOBODY, ['splices', 'rm', rootSplice.id]);
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /is not yours.*FORBIDDEN_CONNECTION.*HTTP 403/s);
    assert.equal((await clients[0]!.get('/small.txt')).status, 200, "root's connection still works");
  });

  test("nobody's own front end: its splice is made, listed as nobody's, and nobody aborts it", async () => {
    const c = await connection(8081);
    const [own] = await splicedBy(nobodyFe, 1);
    assert.ok(own);
    assert.deepEqual(
      nobodyFe.events.filter((e) => e.event === 'relayed'),
      [],
      'spliced, not relayed',
    );
    assert.deepEqual(
      (await ls(NOBODY)).map((s) => [s.id, s.ownerUid]),
      [[own.id, NOBODY]],
    );
    const rootView = await ls('root');
    assert.ok(
      rootView.some((s) => s.id === own.id && s.ownerUid === NOBODY),
      `root sees nobody's splice too: ${JSON.stringify(rootView)}`,
    );
    assert.ok(
      rootView.some((s) => s.ownerUid === 0),
      'and its own',
    );
    assert.equal((await c.get('/small.txt')).status, 200, 'the spliced connection carries requests');
    const rm = await cli(NOBODY, ['splices', 'rm', own.id]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(await ls(NOBODY), []);
    const after = await c.get('/small.txt').catch((e: Error) => ({ event: 'error', code: e.message }));
    assert.ok(
      after.event === 'error' || after.event === 'end',
      `the aborted connection is reset: ${JSON.stringify(after)}`,
    );
  });

  test('a TCP listener without a token refuses to start, and says how to fix it', async () => {
    const r = await tb.exec(
      'lb',
      NODE_CLI[0]!,
      [...NODE_CLI.slice(1), 'lb', '-i', tb.node('lb').ifaces[0]!.name, '--api', '127.0.0.1:7399'],
      { check: false, timeoutMs: 30_000, env: { ...process.env, BATON_TOKEN: '' } },
    );
    assert.equal(r.code, 2, `exit 2 (configuration): ${r.stderr}`);
    assert.match(r.stderr, /TCP 127\.0\.0\.1:7399 without a token.*BATON_TOKEN.*--insecure-no-auth.*CONFIG_INVALID/s);
  });
});
