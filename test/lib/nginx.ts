/** nginx back ends for tests: the launcher lives in lab/launch/nginx.ts; re-exported so tests keep one path. */
export { type NginxBackend, type NginxOptions, startNginx } from '../../lab/launch/nginx.js';
