/** The pure parts of the agent's host checks and teardown report (control/doctor/agent-checks.ts, control/agent/down.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeTeardown } from '../../control/agent/down.js';
import { checkVips } from '../../control/doctor/agent-checks.js';

describe('checkVips', () => {
  const lo = new Set(['127.0.0.1', '::1', '198.19.0.1', '2001:db8:ffff::1']);

  test('a VIP on lo is ok, one missing fails with the ip addr command for its family', () => {
    const [a, b, c] = checkVips(['198.19.0.1', '198.19.0.2', '2001:db8:ffff::2'], lo, false);
    assert.equal(a?.status, 'ok');
    assert.equal(b?.status, 'fail');
    assert.equal(b?.fix, 'ip addr add 198.19.0.2/32 dev lo (or start the agent with --transparent)');
    assert.equal(c?.status, 'fail');
    assert.match(c?.fix ?? '', /^ip addr add 2001:db8:ffff::2\/128 dev lo/);
  });

  test('--transparent: a VIP not on lo is ok, with the reason', () => {
    const [a] = checkVips(['198.19.0.2'], lo, true);
    assert.equal(a?.status, 'ok');
    assert.match(a?.detail ?? '', /IP_TRANSPARENT/);
  });

  test('no VIP, or lo unreadable: skipped with what to do', () => {
    assert.equal(checkVips([], lo, false)[0]?.status, 'skip');
    assert.match(checkVips([], lo, false)[0]?.fix ?? '', /--vip/);
    assert.equal(checkVips(['198.19.0.1'], undefined, false)[0]?.status, 'skip');
  });
});

describe('describeTeardown', () => {
  const base = { pinDir: '/sys/fs/bpf/baton-agent', appSocket: '/run/baton/agent.sock' };
  test('nothing found says where it looked', () => {
    assert.equal(
      describeTeardown({ ...base, detached: [], unpinned: [], removed: [] }),
      'nothing to remove: no agent pins under /sys/fs/bpf/baton-agent, no app socket at /run/baton/agent.sock',
    );
  });
  test('one line for the pins, one per removed path', () => {
    assert.equal(
      describeTeardown({ ...base, detached: [3, 4], unpinned: ['a', 'b'], removed: ['/run/baton/agent.sock'] }),
      'baton agent removed from /sys/fs/bpf/baton-agent: XDP detached from ifindex 3, 4; 2 pinned map(s) removed\n  removed /run/baton/agent.sock',
    );
  });
});
