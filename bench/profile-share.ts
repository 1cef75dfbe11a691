/**
 * The share of connections spliced per client TCP profile (issue 13), with
 * the dispatcher's profile legs and without them (the baseline), in one
 * run: lab/profiles/matrix-run.ts twice, each on its own testbed.
 *
 *   node --import tsx bench/profile-share.ts [--quick]
 */
import { pathToFileURL } from 'node:url';
import { fullMatrix, reducedMatrix } from '../lab/profiles/client-profiles.js';
import { type MatrixRow, runProfileMatrix } from '../lab/profiles/matrix-run.js';
import { type Profile, profileFromArgs } from './profile.js';
import {
  type ProfileShareCell,
  type ProfileShareResults,
  profileShareLines,
  profileShareTotals,
} from './profile-share-results.js';

const cellOf = (r: MatrixRow): ProfileShareCell => ({
  outcome: r.outcome,
  detail: r.detail,
  clean: r.exact && !r.rst,
});

export async function runProfileShareBench(
  profile: Pick<Profile, 'profileShareMatrix' | 'profileShareDownloadBytes'>,
  log: (line: string) => void,
): Promise<ProfileShareResults> {
  const profiles = profile.profileShareMatrix === 'full' ? fullMatrix() : reducedMatrix();
  const run = (profileLegs: boolean) =>
    runProfileMatrix({
      profiles,
      families: [4, 6],
      profileLegs,
      downloadBytes: profile.profileShareDownloadBytes,
      name: profileLegs ? 'bshare' : 'bshare0',
    });
  const legs = await run(true);
  const baseline = await run(false);
  const results: ProfileShareResults = {
    matrix: profile.profileShareMatrix,
    downloadBytes: profile.profileShareDownloadBytes,
    rows: legs.map((r, i) => {
      const b = baseline[i];
      if (!b || b.name !== r.name || b.family !== r.family) throw new Error('profile share: the two passes differ');
      return { family: r.family, profile: r.profile, name: r.name, legs: cellOf(r), baseline: cellOf(b) };
    }),
  };
  const t = profileShareTotals(results);
  log(
    `  spliced with profile legs ${t.legs.spliced}/${t.legs.total}, baseline ${t.baseline.spliced}/${t.baseline.total}, ${t.unclean} unclean`,
  );
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const profile = profileFromArgs(process.argv.slice(2));
  runProfileShareBench(profile, (l) => console.log(l)).then(
    (r) => {
      console.log(profileShareLines(r).join('\n'));
      process.exit(0);
    },
    (e: unknown) => {
      console.error(`profile share: ${(e as Error).stack ?? String(e)}`);
      process.exit(1);
    },
  );
}
