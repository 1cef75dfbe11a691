/** Route choice: the first route whose Host and path prefix both match. */
import type { RouteConfig } from './config.js';

export function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

export function pickRoute(routes: readonly RouteConfig[], host: string, path: string): RouteConfig | undefined {
  return routes.find(
    (r) =>
      (r.host === undefined || hostMatches(r.host, host)) &&
      (r.pathPrefix === undefined || path.startsWith(r.pathPrefix)),
  );
}
