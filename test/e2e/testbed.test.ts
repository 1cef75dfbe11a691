/**
 * The network-namespace testbed itself: a star with two back ends routes
 * plain traffic (ICMP both families, TCP), exposes what callers need to attach
 * XDP programs, cleans up after itself, and removes what a crashed run left.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  canRunPrivileged,
  cleanStale,
  createTestbed,
  destroyPrefix,
  markerPath,
  type OwnerMarker,
  RUN_DIR,
  starTopology,
  type Testbed,
} from '../lib/testbed.js';

const priv = canRunPrivileged();
const skip = priv.ok ? false : priv.reason;
// iputils-ping is not in every minimal image; skip only the ICMP checks then.
const noPing = spawnSync('ping', ['-V']).error ? 'no `ping` binary (apt-get install iputils-ping)' : false;

function netns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A dual-stack HTTP server in a node ('::' also accepts IPv4), resolved once it listens. */
async function httpServer(t: Testbed, node: string, port: number, body: string): Promise<ChildProcess> {
  const server = t.spawn(node, process.execPath, [
    '-e',
    `require('http').createServer((q, s) => s.end(${JSON.stringify(body)})).listen(${port}, '::', () => console.log('listening'))`,
  ]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${node} did not start within 10 s`)), 10_000);
    server.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    server.once('exit', (code) => reject(new Error(`server in ${node} exited early (${code})`)));
  });
  return server;
}

describe('netns testbed', { skip, timeout: 120_000 }, () => {
  let tb: Testbed;

  before(async () => {
    tb = await createTestbed(starTopology({ backends: 2 }));
  });

  after(async () => {
    await tb?.destroy();
  });

  test('exposes namespaces, interfaces, ifindexes and MACs as the kernel has them', async () => {
    assert.match(tb.prefix, /^bt-[0-9a-f]{6}$/);
    assert.deepEqual([...tb.nodes.keys()], ['client', 'lb', 'backend1', 'backend2']);
    const present = new Set(netns());
    for (const ns of tb.namespaces) assert.ok(present.has(ns), `${ns} exists`);

    const lb = tb.node('lb');
    assert.equal(lb.ifaces.length, 3);
    assert.ok(lb.forward);
    const toB1 = tb.iface('lb', 'backend1');
    const b1 = tb.node('backend1');
    assert.equal(toB1.peer.mac, b1.ifaces[0]!.mac);
    assert.equal(toB1.peer.v4, b1.v4);
    assert.equal(b1.v4, '198.18.2.2');
    assert.equal(b1.v6, '2001:db8:2::2');

    // What we report is what the kernel has, and every veth end runs xdp_pass.
    const { stdout } = await tb.ip('lb', ['-j', '-d', 'link', 'show', 'dev', toB1.name]);
    const [link] = JSON.parse(stdout) as { ifindex: number; address: string; xdp?: { prog?: { name?: string } } }[];
    assert.equal(link!.ifindex, toB1.ifindex);
    assert.equal(link!.address, toB1.mac);
    assert.equal(link!.xdp?.prog?.name, 'xdp_pass');
    for (const n of tb.nodes.values())
      for (const f of n.ifaces) assert.ok(f.passXdp, `${n.name}/${f.name} has xdp_pass`);

    // TX checksum offload is off (see testbed.ts for why).
    const k = await tb.exec('client', 'ethtool', ['-k', tb.node('client').ifaces[0]!.name]);
    assert.match(k.stdout, /^tx-checksumming: off/m);
  });

  test('ping client -> backend1 over IPv4 and IPv6 (plain routing through lb)', { skip: noPing }, async () => {
    const b1 = tb.node('backend1');
    await tb.exec('client', 'ping', ['-4', '-c', '2', '-W', '1', '-i', '0.2', b1.v4], { timeoutMs: 10_000 });
    await tb.exec('client', 'ping', ['-6', '-c', '2', '-W', '1', '-i', '0.2', b1.v6], { timeoutMs: 10_000 });
  });

  test('TCP client -> backend1 over IPv4 and IPv6', async () => {
    const b1 = tb.node('backend1');
    const server = await httpServer(tb, 'backend1', 8080, 'hello from backend1');
    for (const url of [`http://${b1.v4}:8080/`, `http://[${b1.v6}]:8080/`]) {
      const r = await tb.exec('client', 'curl', ['-sS', '--max-time', '5', url], { timeoutMs: 10_000 });
      assert.equal(r.stdout, 'hello from backend1', url);
    }
    server.kill();
  });

  test('a bpffs requested by exec is a real bpffs, and pins outlive the command', async () => {
    const fs = await tb.exec('lb', 'stat', ['-f', '-c', '%T', '/sys/fs/bpf'], { bpffs: true });
    assert.equal(fs.stdout.trim(), 'bpf_fs');
    await tb.exec('lb', 'mkdir', ['/sys/fs/bpf/probe'], { bpffs: true });
    const ls = await tb.exec('lb', 'ls', ['/sys/fs/bpf'], { bpffs: true });
    assert.match(ls.stdout, /^probe$/m);
    // Each node has its own instance.
    const other = await tb.exec('backend1', 'ls', ['/sys/fs/bpf'], { bpffs: true });
    assert.doesNotMatch(other.stdout, /^probe$/m);
    // Without bpffs, /sys/fs/bpf in an `ip netns exec` is the fresh sysfs's empty directory.
    const plain = await tb.exec('lb', 'stat', ['-f', '-c', '%T', '/sys/fs/bpf']);
    assert.notEqual(plain.stdout.trim(), 'bpf_fs');
  });

  test('failed commands say which command failed and what it printed', async () => {
    await assert.rejects(tb.exec('client', 'ls', ['/nonexistent-baton']), (e: Error) => {
      assert.match(
        e.message,
        /ip netns exec bt-[0-9a-f]+-client ls \/nonexistent-baton` failed \(exit 2\): .*No such file/,
      );
      return true;
    });
  });

  test('destroy kills spawned processes, removes namespaces and bpffs, and is idempotent', async () => {
    // Also: interfaces can be left without xdp_pass (the LB gets baton's program).
    const t2 = await createTestbed(starTopology({ backends: 1 }), { passXdp: (node) => node !== 'lb' });
    try {
      assert.ok(tb.prefix !== t2.prefix);
      assert.deepEqual(
        t2.node('lb').ifaces.map((f) => f.passXdp),
        [false, false],
      );
      assert.deepEqual(
        t2.node('backend1').ifaces.map((f) => f.passXdp),
        [true],
      );
      const { stdout } = await t2.ip('lb', ['-j', 'link', 'show']);
      assert.ok(
        (JSON.parse(stdout) as { xdp?: unknown }[]).every((l) => l.xdp === undefined),
        'no XDP on lb',
      );

      const sleeper = t2.spawn('backend1', 'sleep', ['300']);
      await t2.exec('lb', 'true', [], { bpffs: true });
      assert.ok(existsSync(t2.bpffsPath('lb')));
      await Promise.all([t2.destroy(), t2.destroy()]);
      await t2.destroy();
      const present = new Set(netns());
      for (const ns of t2.namespaces) assert.ok(!present.has(ns), `${ns} removed`);
      assert.ok(!existsSync(`${RUN_DIR}/${t2.prefix}`), 'run dir removed');
      assert.ok(
        !execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).includes(t2.prefix),
        'bpffs unmounted',
      );
      assert.ok(sleeper.pid !== undefined && !alive(sleeper.pid), 'spawned process killed');
      // The first testbed is untouched.
      assert.ok(new Set(netns()).has(tb.ns('lb')));
    } finally {
      await t2.destroy();
    }
  });

  test("stale namespaces of a dead run are removed at startup; a live run's are not", async () => {
    const id = randomBytes(3).toString('hex');
    const stale = `bt-stale${id}`;
    const orphan = `bt-orphan${id}`; // no marker at all
    const liveFake = `bt-live${id}`; // owned by this (live) process
    const dead = spawnSync('true').pid; // a pid that has exited
    const mark = (prefix: string, pid: number) => {
      mkdirSync(`${RUN_DIR}/${prefix}`, { recursive: true });
      writeFileSync(markerPath(prefix), JSON.stringify({ prefix, pid } satisfies OwnerMarker));
    };
    try {
      mark(stale, dead);
      mark(liveFake, process.pid);
      for (const ns of [`${stale}-a`, `${stale}-b`, `${orphan}-x`, `${liveFake}-a`])
        execFileSync('ip', ['netns', 'add', ns]);
      // A link between the stale ones, as a real run would have.
      execFileSync('ip', [
        '-n',
        `${stale}-a`,
        'link',
        'add',
        'x',
        'type',
        'veth',
        'peer',
        'name',
        'y',
        'netns',
        `${stale}-b`,
      ]);

      // createTestbed cleans stale ones before it builds; a generic two-node description.
      const t3 = await createTestbed({
        name: 'pair',
        nodes: [{ name: 'a' }, { name: 'b' }],
        links: [{ a: 'a', b: 'b' }],
      });
      try {
        const present = new Set(netns());
        assert.ok(!present.has(`${stale}-a`) && !present.has(`${stale}-b`), 'stale run removed');
        assert.ok(!present.has(`${orphan}-x`), 'orphan without marker removed');
        assert.ok(!existsSync(`${RUN_DIR}/${stale}`), 'stale marker removed');
        assert.ok(present.has(`${liveFake}-a`), 'live run kept');
        assert.ok(present.has(tb.ns('client')), 'our own testbed kept');
        // The generic two-node description routes too.
        await httpServer(t3, 'b', 8080, 'b');
        const r = await t3.exec('a', 'curl', ['-sS', '--max-time', '5', `http://[${t3.node('b').v6}]:8080/`], {
          timeoutMs: 10_000,
        });
        assert.equal(r.stdout, 'b');
      } finally {
        await t3.destroy();
      }
      // Explicit cleanup keeps the live one too.
      assert.ok(!cleanStale().includes(liveFake));
      assert.ok(new Set(netns()).has(`${liveFake}-a`));
    } finally {
      destroyPrefix(liveFake);
      for (const p of [stale, orphan]) {
        for (const ns of netns().filter((n) => n.startsWith(`${p}-`))) execFileSync('ip', ['netns', 'del', ns]);
      }
    }
    assert.ok(!netns().some((n) => n.includes(id)), 'test leaves nothing behind');
  });
});
