/**
 * What the service needs from the splicer (control/splice/splicer.ts): the
 * surface the REST API depends on, written down in one place. Tests can
 * stand a recording implementation in for it.
 */
import type { Splicer } from '../splice/splicer.js';

export type { ConnectionState, ConnectionStatus, SpliceRecord, TrafficView } from '../splice/splicer.js';

export type SplicerPort = Pick<Splicer, 'records' | 'splice' | 'handoff' | 'abort' | 'status' | 'leaseLegPorts'>;
