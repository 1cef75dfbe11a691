/**
 * baton's SDK for Node front ends:
 *   import { createClient, splice, BatonApiError } from 'baton/control/sdk/index.js';
 *   const api = createClient({ socketPath: '/run/baton/api.sock' });
 *   try { await splice(client, upstream, { prefix: firstRequest, client: api }); }
 *   catch (e) { if (e instanceof BatonApiError) relayInUserspace(); else throw e; }
 */
export { createClient, resolveEndpoint, type BatonClient, type ClientOptions, type HandoffOptions } from './client.js';
export { DEFAULT_API, DEFAULT_API_SOCKET, DEFAULT_METRICS_URL, ENV_API, ENV_METRICS_URL, ENV_TOKEN, parseEndpoint, type Endpoint } from './endpoint.js';
export { BatonApiError } from './errors.js';
export { handoff, splice, type SpliceOptions } from './splice.js';
export type * from './types.js';
export { fetchMetrics, histogramQuantile, metricsUrl, parseExposition, sumSamples, type MetricFamily, type Sample } from './metrics.js';
