/**
 * Owner markers: /run/baton-testbed/<prefix>/owner.json records which
 * process (pid and start time, against pid reuse) made a testbed, so a
 * later run can tell a live testbed from one left by a crashed run.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { RUN_DIR } from './naming.js';

export interface OwnerMarker {
  prefix: string;
  pid: number;
  /** field 22 of /proc/<pid>/stat when the marker was written: guards against pid reuse */
  startTime?: string;
  /** created by `scripts/testbed up`: not stale while its namespaces exist */
  persistent?: boolean;
  topology?: string;
  created?: string;
}

export function markerPath(prefix: string): string {
  return `${RUN_DIR}/${prefix}/owner.json`;
}

export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parens; fields after the last ')' are stable.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function ownerAlive(m: OwnerMarker): boolean {
  const st = procStartTime(m.pid);
  if (st === undefined) return false;
  return m.startTime === undefined || m.startTime === st;
}

export function readMarker(prefix: string): OwnerMarker | undefined {
  try {
    return JSON.parse(readFileSync(markerPath(prefix), 'utf8')) as OwnerMarker;
  } catch {
    return undefined;
  }
}

export function writeMarker(m: OwnerMarker): void {
  mkdirSync(`${RUN_DIR}/${m.prefix}`, { recursive: true });
  writeFileSync(markerPath(m.prefix), `${JSON.stringify(m, null, 2)}\n`);
}
