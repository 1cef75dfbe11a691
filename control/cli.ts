#!/usr/bin/env node
/**
 * `baton`: the one command-line entry point (package.json "bin"). Commands
 * live in control/cli/; `baton lb` and `baton down` run the daemon
 * (control/daemon), loaded only for them.
 *   node --import tsx control/cli.ts --help     (source tree)
 *   baton --help                                (built: dist/control/cli.js)
 */
import { main } from './cli/main.js';

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`baton: unexpected failure: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
