/** One doctor check's answer, and the two ways the checks build one. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  /** stable id, e.g. "rp_filter"; per-interface checks also carry `iface` */
  id: string;
  iface?: string;
  status: CheckStatus;
  /** what was seen */
  detail: string;
  /** what to do (for warn/fail) */
  fix?: string;
}

export const ok = (id: string, detail: string, iface?: string): Check => ({
  id,
  status: 'ok',
  detail,
  ...(iface ? { iface } : {}),
});
export const bad = (
  id: string,
  status: 'warn' | 'fail' | 'skip',
  detail: string,
  fix?: string,
  iface?: string,
): Check => ({
  id,
  status,
  detail,
  ...(fix ? { fix } : {}),
  ...(iface ? { iface } : {}),
});
