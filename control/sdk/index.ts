/**
 * baton's SDK for Node front ends:
 *   import { createClient, splice, BatonApiError } from 'baton/control/sdk/index.js';
 *   const api = createClient({ socketPath: '/run/baton/api.sock' });
 *   try { await splice(client, upstream, { prefix: firstRequest, client: api }); }
 *   catch (e) { if (e instanceof BatonApiError) relayInUserspace(); else throw e; }
 */
export { type BatonClient, type ClientOptions, createClient, type HandoffOptions, resolveEndpoint } from './client.js';
export {
  DEFAULT_API,
  DEFAULT_API_SOCKET,
  DEFAULT_METRICS_URL,
  ENV_API,
  ENV_METRICS_URL,
  ENV_TOKEN,
  type Endpoint,
  parseEndpoint,
} from './endpoint.js';
export { BatonApiError } from './errors.js';
export {
  fetchMetrics,
  histogramQuantile,
  type MetricFamily,
  metricsUrl,
  parseExposition,
  type Sample,
  sumSamples,
} from './metrics.js';
export { handoff, type MigrateOptions, migrate, type SpliceOptions, splice } from './splice.js';
export type * from './types.js';
