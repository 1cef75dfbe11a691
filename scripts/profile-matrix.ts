/**
 * The full client-profile matrix (issue 13): every combination of
 * timestamps on/off x SACK on/off x window scaling off/default/14 x MSS
 * 536/1220/1460 x ECN off/on (72 profiles) over IPv4 and IPv6, through the
 * real daemon and dispatcher to nginx, one connection each (a 1 MiB download
 * and a keep-alive request, SHA-256 checked; lab/profiles/matrix-run.ts).
 * Prints per profile whether it was spliced or relayed (with the refusal)
 * and the share spliced; exits 1 if any connection had wrong bytes or a RST.
 *
 *   node --import tsx scripts/profile-matrix.ts              # profile legs (default)
 *   node --import tsx scripts/profile-matrix.ts --baseline   # profileLegs: false, as before issue 13
 *   ... --family 4|6   --limit N (first N profiles)
 */
import { fullMatrix } from '../lab/profiles/client-profiles.js';
import { runProfileMatrix } from '../lab/profiles/matrix-run.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const baseline = process.argv.includes('--baseline');
  const rows = await runProfileMatrix({
    profiles: fullMatrix().slice(0, Number(arg('--limit') ?? 72)),
    families: arg('--family') ? [Number(arg('--family')) as 4 | 6] : [4, 6],
    profileLegs: !baseline,
    downloadBytes: 1 << 20,
    name: 'profmx',
    onRow: (r) =>
      process.stdout.write(
        `IPv${r.family} ${r.name.padEnd(58)} ${
          r.outcome === 'spliced'
            ? `spliced (leg ${r.detail || 'default'})`
            : r.outcome === 'relayed'
              ? `RELAYED: ${r.detail}`
              : 'no event'
        }${r.exact ? '' : ' BYTES DIFFER'}${r.rst ? ' RST' : ''}\n`,
      ),
  });
  const spliced = rows.filter((r) => r.outcome === 'spliced').length;
  const bad = rows.filter((r) => !r.exact || r.rst).length;
  process.stdout.write(
    `\n${spliced}/${rows.length} spliced (${((100 * spliced) / rows.length).toFixed(0)}%), ${bad} with wrong bytes or a RST${baseline ? ' [baseline: profileLegs false]' : ''}\n`,
  );
  return bad ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`profile-matrix: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  },
);
