/** The keep-alive client for tests: it lives in lab/clients/ (the demo uses it); re-exported so tests keep one path. */
export { type Answer, KeepAliveClient } from '../../lab/clients/keepalive-client.js';
