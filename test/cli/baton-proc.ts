/**
 * One-shot `baton` CLI invocations in tests, from the test process or inside
 * a testbed node: they live in lab/launch/baton-cli.ts (the demo uses them
 * too); re-exported so tests keep importing one path.
 */
export { baton, batonIn, type CliResult } from '../../lab/launch/baton-cli.js';
