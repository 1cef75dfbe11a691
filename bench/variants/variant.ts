/**
 * A way of getting a request from the client namespace to the back end,
 * through the LB namespace. Every variant runs on the same testbed, the same
 * interfaces (baton's XDP program attached to the LB's veths throughout,
 * passing what is not in its table) and the same back end; only what
 * listens on the LB differs.
 */
import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Testbed } from '../../lab/testbed/index.js';

/** 'baton-migrate' runs on the migrate bench's own bed (bench/migrate.ts), not in the main matrix. */
export type VariantId = 'plain' | 'haproxy-http' | 'haproxy-tcp' | 'nginx' | 'baton' | 'baton-migrate';

export interface Variant {
  id: VariantId;
  /** for tables and charts */
  title: string;
  /** one line: what runs and how it is configured */
  describe: string;
  url(path: string): string;
  /** called after every load run (baton releases the finished splices) */
  afterRun?(): Promise<void>;
  /** counters worth reporting (baton: splices, refusals, fallbacks) */
  stats?(): Record<string, number>;
  stop(): Promise<void>;
}

/** Where each variant listens on the LB's VIP; plain routing goes to the back end itself. */
export const VARIANT_PORTS = { baton: 80, 'haproxy-http': 8001, 'haproxy-tcp': 8002, nginx: 8003 } as const;

/** Order of the columns in every table and chart: the floor first, baton last. */
export const VARIANT_ORDER: VariantId[] = ['plain', 'haproxy-http', 'haproxy-tcp', 'nginx', 'baton'];

/** Waits until a URL answers 200 from the client namespace (a proxy is up), bounded; fails at once if the process died. */
export async function waitForHttp(
  tb: Testbed,
  url: string,
  what: string,
  proc?: ChildProcess,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    if (proc && proc.exitCode !== null)
      throw new Error(`${what} exited with status ${proc.exitCode} before answering on ${url} (its stderr is above)`);
    const r = await tb.exec('client', 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', url], {
      check: false,
    });
    last = r.stdout;
    if (r.stdout === '200') return;
    await sleep(100);
  }
  throw new Error(`${what} did not answer 200 on ${url} within ${timeoutMs} ms (last: ${last || 'no answer'})`);
}

/**
 * Threads (HAProxy) and worker processes (nginx) of the proxies: one per
 * core, what both projects recommend and what HAProxy picks by itself.
 */
export const PROXY_WORKERS = availableParallelism();
