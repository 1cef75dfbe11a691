/** Runs a command as `uid` (gid the same number, no supplementary groups): argv for tb.spawn / tb.exec. */
export const asUser = (uid: number, argv: string[]): [string, string[]] => [
  'setpriv',
  ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...argv],
];
