/** The floor: the client talks to the back end directly; the LB namespace only routes (kernel forwarding, no listener). */

import type { Testbed } from '../../lab/testbed/index.js';
import { BACKEND_PORT } from '../profile.js';
import type { Variant } from './variant.js';

export function plainRouting(tb: Testbed): Variant {
  const backend = tb.node('backend1').v4;
  return {
    id: 'plain',
    title: 'plain routing',
    describe: `client -> ${backend}:${BACKEND_PORT} directly; the lb namespace forwards (ip_forward), nothing listens on it`,
    url: (path) => `http://${backend}:${BACKEND_PORT}${path}`,
    stop: async () => {},
  };
}
