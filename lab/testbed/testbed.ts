/**
 * A built testbed: look up its nodes and interfaces, run commands and
 * long-running processes in a node's namespace (optionally with the node's
 * own bpffs), and tear it all down.
 */

import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn as cpSpawn, execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { type ExecOptions, type ExecResult, run, shellQuote } from './exec.js';
import { untrack } from './exit-cleanup.js';
import { bpffsMounts, teardownPrefixSync } from './inventory.js';
import { RUN_DIR } from './naming.js';
import type { IfaceInfo, NodeInfo } from './node-info.js';
import type { Plan } from './plan.js';
import type { Topology } from './topology.js';

export interface NsSpawnOptions extends Omit<SpawnOptions, 'detached'> {
  bpffs?: boolean;
}

export class Testbed {
  readonly nodes = new Map<string, NodeInfo>();
  private readonly children = new Set<ChildProcess>();
  private readonly bpffsReady = new Set<string>();
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  /** use createTestbed() */
  constructor(
    readonly prefix: string,
    readonly topology: Topology,
    private readonly plan: Plan,
  ) {}

  /** namespace names, in node order */
  get namespaces(): string[] {
    return this.plan.nodes.map((n) => this.nsName(n.name));
  }

  private nsName(node: string): string {
    if (!this.plan.byNode.has(node)) throw new Error(`testbed ${this.prefix}: no node ${JSON.stringify(node)}`);
    return `${this.prefix}-${node}`;
  }

  node(name: string): NodeInfo {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`testbed ${this.prefix}: no node ${JSON.stringify(name)}`);
    return n;
  }

  /** namespace of a node */
  ns(node: string): string {
    return this.nsName(node);
  }

  /** The interface of `node` on the link to `peer`. */
  iface(node: string, peer: string): IfaceInfo {
    const f = this.node(node).ifaces.find((i) => i.peer.node === peer);
    if (!f) throw new Error(`testbed ${this.prefix}: ${node} has no link to ${peer}`);
    return f;
  }

  /** Runs `ip -n <ns> ...args`. */
  ip(node: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(['ip', '-n', this.nsName(node), ...args], opts);
  }

  /**
   * Host directory of this node's own bpffs instance. Pins made by one
   * command (a daemon) are visible to later ones (a CLI, a test), as on a
   * real host; every node has its own, so nodes do not see each other's pins.
   */
  bpffsPath(node: string): string {
    this.nsName(node); // validates the name
    return `${RUN_DIR}/${this.prefix}/bpffs/${node}`;
  }

  private ensureBpffs(node: string): string {
    const dir = this.bpffsPath(node);
    if (!this.bpffsReady.has(node)) {
      mkdirSync(dir, { recursive: true });
      if (!bpffsMounts(this.prefix).includes(dir))
        execFileSync('mount', ['-t', 'bpf', 'bpf', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      this.bpffsReady.add(node);
    }
    return dir;
  }

  /**
   * argv prefix that runs a command inside the node's namespace. `ip netns
   * exec` gives the command a private mount namespace with a fresh /sys, in
   * which /sys/fs/bpf is empty and not a bpffs; with bpffs: true the prefix
   * first bind-mounts the node's bpffs instance there (inside that private
   * mount namespace, so it is redone for every command).
   *   [...tb.nsArgv('lb', { bpffs: true }), 'bpftool', 'map', 'show']
   */
  nsArgv(node: string, opts: { bpffs?: boolean } = {}): string[] {
    const argv = ['ip', 'netns', 'exec', this.ns(node)];
    if (!opts.bpffs) return argv;
    // $1 is the directory; the command follows as "$@" (never parsed by the shell).
    return [
      ...argv,
      'sh',
      '-ec',
      'mount --bind "$1" /sys/fs/bpf; shift; exec "$@"',
      'baton-ns',
      this.ensureBpffs(node),
    ];
  }

  /** nsArgv as a shell-quoted string, for scripts and printed instructions. */
  shellPrefix(node: string, opts: { bpffs?: boolean } = {}): string {
    return this.nsArgv(node, opts).map(shellQuote).join(' ');
  }

  /** Runs a command in the node's namespace and waits for it. Throws CommandError on failure unless check: false. */
  exec(node: string, cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([...this.nsArgv(node, opts), cmd, ...args], opts);
  }

  /**
   * Starts a long-running command in the node's namespace (a server, a
   * daemon). It gets its own process group, which destroy() kills (SIGTERM,
   * then SIGKILL); anything else left in the namespace is SIGKILLed too.
   * stdout and stderr are pipes unless opts.stdio says otherwise: read them
   * (a full pipe blocks the child) or pass stdio: 'ignore' / 'inherit'.
   */
  spawn(node: string, cmd: string, args: readonly string[] = [], opts: NsSpawnOptions = {}): ChildProcess {
    if (this.destroyed) throw new Error(`testbed ${this.prefix} is destroyed`);
    const { bpffs, ...rest } = opts;
    const [file, ...pre] = this.nsArgv(node, { bpffs });
    const child = cpSpawn(file!, [...pre, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...rest,
      detached: true,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** A JSON-friendly summary (what `scripts/testbed up` prints). */
  describe(): { prefix: string; topology: string; nodes: NodeInfo[] } {
    return { prefix: this.prefix, topology: this.topology.name, nodes: [...this.nodes.values()] };
  }

  // -- teardown ------------------------------------------------------------

  /** Kills spawned processes, deletes the namespaces, unmounts bpffs. Idempotent; safe to call concurrently. */
  destroy(): Promise<void> {
    this.destroying ??= this.destroyAsync();
    return this.destroying;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  private async destroyAsync(): Promise<void> {
    this.destroyed = true;
    // Give our own children a chance to exit cleanly (flush output, detach
    // programs), then make sure.
    const waiting = [...this.children].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('exit', () => resolve());
          killGroup(c, 'SIGTERM');
        }),
    );
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([Promise.all(waiting), timeout]);
    for (const c of this.children) killGroup(c, 'SIGKILL');
    const left = teardownPrefixSync(this.prefix, this.namespaces);
    untrack(this);
    if (left.length) throw new Error(`testbed ${this.prefix}: could not delete namespaces ${left.join(' ')}`);
  }

  /** Synchronous teardown for exit paths (process 'exit', signals); best effort, idempotent. */
  destroySync(): void {
    this.destroyed = true;
    for (const c of this.children) killGroup(c, 'SIGKILL');
    teardownPrefixSync(this.prefix, this.namespaces);
    untrack(this);
  }
}

function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined) return;
  try {
    process.kill(-c.pid, sig); // detached: the child leads its own process group
  } catch {
    try {
      c.kill(sig);
    } catch {
      /* gone */
    }
  }
}
