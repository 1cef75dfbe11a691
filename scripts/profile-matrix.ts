/**
 * The full client-profile matrix (issue 13): every combination of
 * timestamps on/off x SACK on/off x window scaling off/default/14 x MSS
 * 536/1220/1460 x ECN off/on (72 profiles) over IPv4 and IPv6, through the
 * real daemon and dispatcher to nginx, one connection each (a 1 MiB download
 * and a keep-alive request, SHA-256 checked). Prints per profile whether it
 * was spliced or relayed (with the refusal) and the share spliced.
 *
 *   node --import tsx scripts/profile-matrix.ts              # profile legs (default)
 *   node --import tsx scripts/profile-matrix.ts --baseline   # profileLegs: false, as before issue 13
 *   ... --family 4|6   --limit N (first N profiles)
 *
 * Bounded: each curl has a 20 s limit; the testbed is removed on every exit.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchEvent } from '../control/dispatcher/dispatcher.js';
import { startDaemon } from '../lab/launch/daemon.js';
import { startDispatcher } from '../lab/launch/dispatcher.js';
import { startNginx } from '../lab/launch/nginx.js';
import { applyClientProfile, fullMatrix, outRsts, profileName } from '../lab/profiles/client-profiles.js';
import { createTestbed, starTopology, VIP4, VIP6 } from '../lab/testbed/index.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const baseline = process.argv.includes('--baseline');
  const fams = arg('--family') ? [Number(arg('--family')) as 4 | 6] : ([4, 6] as const);
  const rows = fullMatrix().slice(0, Number(arg('--limit') ?? 72));
  const tb = await createTestbed(starTopology({ backends: 1, vip: true, name: 'profmx' }), {
    passXdp: (node) => node !== 'lb',
  });
  let bad = 0;
  try {
    const lb = await startDaemon(
      tb,
      'lb',
      tb.node('lb').ifaces.map((i) => i.name),
    );
    const nginx = await startNginx(tb, 'backend1', 8080, { 'big.bin': 1 << 20, 'small.txt': 'small\n' });
    const fe = await startDispatcher(tb, {
      listen: [`${VIP4}:80`, `[${VIP6}]:80`],
      api: { socketPath: lb.socketPath },
      pools: {
        v4: { backends: [`${tb.node('backend1').v4}:8080`] },
        v6: { backends: [`[${tb.node('backend1').v6}]:8080`] },
      },
      routes: [{ host: 'v6.example', pool: 'v6' }, { pool: 'v4' }],
      profileLegs: !baseline,
    });
    try {
      let spliced = 0;
      let total = 0;
      for (const p of rows) {
        await applyClientProfile(tb, 'client', p, { v4: VIP4, v6: VIP6 });
        for (const fam of fams) {
          total++;
          const seen = fe.events.length;
          const rsts = [await outRsts(tb, 'client'), await outRsts(tb, 'backend1')];
          const out = join(tmpdir(), `baton-profmx-${process.pid}`);
          const base = fam === 4 ? `http://${VIP4}` : `http://[${VIP6}]`;
          const r = await tb.exec(
            'client',
            'curl',
            [
              '-sS',
              '-g',
              '--max-time',
              '20',
              '-H',
              `Host: v${fam}.example`,
              '-w',
              '%{http_code}\\n',
              `${base}/big.bin`,
              '-o',
              out,
              `${base}/small.txt`,
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
          const rstNow = [await outRsts(tb, 'client'), await outRsts(tb, 'backend1')];
          const rst = rstNow[0] !== rsts[0] || rstNow[1] !== rsts[1];
          const how =
            e?.event === 'spliced'
              ? `spliced (leg ${e.profile || 'default'})`
              : e?.event === 'relayed'
                ? `RELAYED: ${e.detail}`
                : 'no event';
          if (e?.event === 'spliced') spliced++;
          if (!exact || rst) bad++;
          process.stdout.write(
            `IPv${fam} ${profileName(p).padEnd(58)} ${how}${exact ? '' : ' BYTES DIFFER'}${rst ? ' RST' : ''}\n`,
          );
        }
      }
      process.stdout.write(
        `\n${spliced}/${total} spliced (${((100 * spliced) / total).toFixed(0)}%), ${bad} with wrong bytes or a RST${baseline ? ' [baseline: profileLegs false]' : ''}\n`,
      );
    } finally {
      await fe.stop();
      await nginx.stop();
      await lb.stop();
    }
  } finally {
    await tb.destroy();
  }
  return bad ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`profile-matrix: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
