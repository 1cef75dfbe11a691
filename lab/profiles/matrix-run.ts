/**
 * One pass of the client-profile matrix (issue 13) through the real daemon
 * and dispatcher to nginx: for each profile and address family, one client
 * connection (a download and a keep-alive request, SHA-256 checked), and
 * whether the dispatcher spliced or relayed it. Used by
 * scripts/profile-matrix.ts (the full matrix, printed) and the benchmark
 * (bench/profile-share.ts: the share spliced per profile, with and without
 * profile legs, in one run).
 *
 * Bounded: each curl has a 20 s limit; the testbed is removed on every exit.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../../control/dispatcher/dispatcher.js';
import { startDaemon } from '../launch/daemon.js';
import { startDispatcher } from '../launch/dispatcher.js';
import { startNginx } from '../launch/nginx.js';
import { createTestbed, starTopology, VIP4, VIP6 } from '../testbed/index.js';
import { applyClientProfile, type ClientTcpProfile, outRsts, profileName } from './client-profiles.js';

export interface MatrixRow {
  family: 4 | 6;
  profile: ClientTcpProfile;
  /** profileName(profile) */
  name: string;
  outcome: 'spliced' | 'relayed' | 'no event';
  /** spliced: the back-end leg's profile key ('' = the LB's defaults); relayed: the refusal */
  detail: string;
  /** download and keep-alive answer byte-exact */
  exact: boolean;
  /** a RST left the client or the back end during the connection */
  rst: boolean;
}

export interface MatrixOptions {
  profiles: ClientTcpProfile[];
  families: ReadonlyArray<4 | 6>;
  /** the dispatcher's profileLegs (false: the baseline from before issue 13) */
  profileLegs: boolean;
  /** download size per connection (bytes) */
  downloadBytes: number;
  /** testbed name prefix */
  name: string;
  onRow?: (row: MatrixRow) => void;
}

export async function runProfileMatrix(opts: MatrixOptions): Promise<MatrixRow[]> {
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: opts.name }), {
    passXdp: (node) => node !== 'lb',
  });
  const rows: MatrixRow[] = [];
  try {
    const lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
    );
    const nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': opts.downloadBytes, 'small.txt': 'small\n' });
    const fe = await startDispatcher(tb, {
      listen: [`${VIP4}:80`, `[${VIP6}]:80`],
      api: { socketPath: lb.socketPath },
      pools: {
        v4: { backends: [`${tb.node('backend1').v4}:8080`] },
        v6: { backends: [`[${tb.node('backend1').v6}]:8080`] },
      },
      routes: [{ host: 'v6.example', pool: 'v6' }, { pool: 'v4' }],
      profileLegs: opts.profileLegs,
    });
    const out = join(tmpdir(), `baton-${opts.name}-${process.pid}`);
    try {
      for (const p of opts.profiles) {
        await applyClientProfile(tb, 'client', p, { v4: VIP4, v6: VIP6 });
        for (const family of opts.families) {
          const seen = fe.events.length;
          const before = [await outRsts(tb, 'client'), await outRsts(tb, 'backend1')];
          const base = family === 4 ? `http://${VIP4}` : `http://[${VIP6}]`;
          const r = await tb.exec(
            'client',
            'curl',
            [
              ...['-sS', '-g', '--max-time', '20', '-H', `Host: v${family}.example`, '-w', '%{http_code}\\n'],
              ...[`${base}/big.bin`, '-o', out, `${base}/small.txt`],
            ],
            { timeoutMs: 25_000 },
          );
          let exact = false;
          try {
            exact =
              createHash('sha256').update(readFileSync(out)).digest('hex') === nginx.sha256['/big.bin'] &&
              r.stdout.trim().split('\n').join(' ') === '200 small 200';
          } catch {
            exact = false;
          } finally {
            rmSync(out, { force: true });
          }
          let e: DispatchEvent | undefined;
          for (let i = 0; i < 100 && !e; i++) {
            e = fe.events.slice(seen).find((x) => x.event === 'spliced' || x.event === 'relayed');
            if (!e) await sleep(10);
          }
          const after = [await outRsts(tb, 'client'), await outRsts(tb, 'backend1')];
          const row: MatrixRow = {
            family,
            profile: p,
            name: profileName(p),
            outcome: e?.event === 'spliced' || e?.event === 'relayed' ? e.event : 'no event',
            detail: e?.event === 'spliced' ? e.profile : e?.event === 'relayed' ? e.detail : '',
            exact,
            rst: after[0] !== before[0] || after[1] !== before[1],
          };
          rows.push(row);
          opts.onRow?.(row);
        }
      }
    } finally {
      await fe.stop();
      await nginx.stop();
      await lb.stop();
    }
  } finally {
    await tb.destroy();
  }
  return rows;
}
