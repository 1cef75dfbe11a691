/**
 * What the client-profile share benchmark (bench/profile-share.ts) records
 * and its tables: for every client TCP profile and address family, whether
 * the dispatcher spliced the connection with profile legs (issue 13) and
 * with `profileLegs: false` (the baseline from before it), in one run. Pure,
 * so the report and the unit tests use it without privileges.
 */
import { AXES, type ClientTcpProfile } from '../lab/profiles/client-profiles.js';

/** The issue-13 goal: every client profile spliced. */
export const PROFILE_SHARE_TARGET = 1;

export interface ProfileShareCell {
  outcome: 'spliced' | 'relayed' | 'no event';
  /** spliced: the back-end leg's profile key ('' = the LB's defaults); relayed: the refusal */
  detail: string;
  /** byte-exact download and keep-alive answer, no RST at either end */
  clean: boolean;
}

export interface ProfileShareRow {
  family: 4 | 6;
  profile: ClientTcpProfile;
  name: string;
  legs: ProfileShareCell;
  baseline: ProfileShareCell;
}

export interface ProfileShareResults {
  matrix: 'full' | 'reduced';
  downloadBytes: number;
  rows: ProfileShareRow[];
}

export interface Share {
  spliced: number;
  total: number;
}

const share = (rows: ProfileShareRow[], side: 'legs' | 'baseline'): Share => ({
  spliced: rows.filter((r) => r[side].outcome === 'spliced').length,
  total: rows.length,
});

export const shareOf = (s: Share): number => (s.total ? s.spliced / s.total : Number.NaN);

export function profileShareTotals(r: ProfileShareResults): { legs: Share; baseline: Share; unclean: number } {
  return {
    legs: share(r.rows, 'legs'),
    baseline: share(r.rows, 'baseline'),
    unclean: r.rows.filter((x) => !x.legs.clean || !x.baseline.clean).length,
  };
}

const pct = (s: Share): string => `${s.spliced}/${s.total} (${(100 * shareOf(s)).toFixed(0)}%)`;
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
const axisValue = (axis: keyof ClientTcpProfile, v: unknown): string =>
  typeof v === 'boolean' ? `${axis} ${v ? 'on' : 'off'}` : `${axis} ${String(v)}`;

/** The summary line and the share spliced per value of every axis (each value is in several profiles). */
export function profileShareLines(r: ProfileShareResults): string[] {
  const t = profileShareTotals(r);
  const lines = [
    `${r.matrix === 'full' ? 'Every' : 'A reduced set of'} client TCP profile${r.matrix === 'full' ? '' : 's'} (${r.rows.length / new Set(r.rows.map((x) => x.family)).size} profiles x IPv${[...new Set(r.rows.map((x) => x.family))].join('/IPv')}), one connection each through the dispatcher (${Math.round(r.downloadBytes / 1024)} KiB download + a keep-alive request, SHA-256 checked): ` +
      `spliced with profile legs ${pct(t.legs)}, without them (profileLegs false, as before) ${pct(t.baseline)}; ${t.unclean} connection(s) with wrong bytes or a RST.`,
    '',
    row(['client profile axis value', 'spliced, profile legs', 'spliced, baseline']),
    row(['---', '---:', '---:']),
  ];
  for (const axis of Object.keys(AXES) as Array<keyof typeof AXES>) {
    for (const v of AXES[axis]) {
      const rows = r.rows.filter((x) => x.profile[axis] === v);
      if (rows.length) lines.push(row([axisValue(axis, v), pct(share(rows, 'legs')), pct(share(rows, 'baseline'))]));
    }
  }
  return lines;
}

const cellText = (c: ProfileShareCell): string =>
  `${c.outcome === 'spliced' ? `spliced (leg ${c.detail || 'default'})` : c.outcome === 'relayed' ? 'relayed' : 'no event'}${c.clean ? '' : ' **wrong bytes or RST**'}`;

/** Every profile and family: what happened with and without profile legs (results.md only: long). */
export function profileShareTable(r: ProfileShareResults): string[] {
  const lines = [row(['client profile', 'family', 'profile legs', 'baseline']), row(['---', '---', '---', '---'])];
  for (const x of r.rows) lines.push(row([x.name, `IPv${x.family}`, cellText(x.legs), cellText(x.baseline)]));
  return lines;
}
