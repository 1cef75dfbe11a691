/**
 * The network-namespace testbed, for tests: it lives in lab/testbed/ (the
 * demo and the benchmarks use it too); this file re-exports it so tests keep
 * importing one path.
 */
export * from '../../lab/testbed/index.js';
