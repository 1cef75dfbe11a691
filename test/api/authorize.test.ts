/**
 * The authorization rules as pure decisions (control/service/authorize.ts),
 * and the pure parts around them: /proc status parsing, struct ucred,
 * /etc/group lookup, the owners file kept across restarts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gidInGroupFile } from '../../control/daemon/api-socket.js';
import { ownersToSave, restoreOwners } from '../../control/daemon/owners.js';
import { BatonError } from '../../control/errors.js';
import {
  CAP_SYS_PTRACE,
  type Caller,
  connectionDecision,
  isPrivileged,
  ownerUidOf,
  type ProcCreds,
  parseProcStatus,
  peerCaller,
  processDecision,
  seesConnection,
} from '../../control/service/authorize.js';
import { decodeUcred } from '../../control/sys/peercred.js';
import { fakeRecord } from './lib.js';

const STATUS = (uid: string, gid: string, capEff = '0000000000000000') =>
  `Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\nUid:\t${uid}\nGid:\t${gid}\nGroups:\t\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

const creds = (uid: number, gid = uid): ProcCreds => ({
  uids: [uid, uid, uid, uid],
  gids: [gid, gid, gid, gid],
  capEff: 0n,
});
const peer = (uid: number, gid = uid, privileged = uid === 0): Caller => ({
  kind: 'peer',
  pid: 999,
  uid,
  gid,
  privileged,
});
const NOBODY = peer(65534);
const TOKEN: Caller = { kind: 'operator', via: 'token' };

function refusal(e: BatonError | undefined, code: string, reason: string): BatonError {
  assert.ok(e instanceof BatonError, 'refused');
  assert.equal(e.code, code);
  assert.equal(e.reason, reason);
  assert.equal(e.status, code === 'SOCKET_NOT_FOUND' ? 404 : 403);
  return e;
}

describe('authorization: pure decisions', () => {
  test('/proc/<pid>/status: real, effective, saved, fs uids and gids; CapEff', () => {
    assert.deepEqual(parseProcStatus(STATUS('1000\t1001\t1002\t1003', '50\t51\t52\t53', '0000000000080000')), {
      uids: [1000, 1001, 1002, 1003],
      gids: [50, 51, 52, 53],
      capEff: 0x80000n,
    });
    assert.equal(parseProcStatus('Name:\tx\nUid:\t1\t1\t1\t1\n'), undefined, 'a missing line is no credentials');
    assert.equal(parseProcStatus(STATUS('1 1 1', '1\t1\t1\t1')), undefined, 'a malformed line too');
  });

  test('callers: root and CAP_SYS_PTRACE are privileged, the operator too; the owner uid of an operator splice is 0', () => {
    const cred = { pid: 4242, uid: 1000, gid: 1000 };
    assert.equal(isPrivileged(peerCaller({ ...cred, uid: 0 }, undefined)), true, 'uid 0');
    assert.equal(
      isPrivileged(
        peerCaller(
          cred,
          parseProcStatus(
            STATUS(
              '1000\t1000\t1000\t1000',
              '1000\t1000\t1000\t1000',
              (1n << BigInt(CAP_SYS_PTRACE)).toString(16).padStart(16, '0'),
            ),
          ),
        ),
      ),
      true,
      'CAP_SYS_PTRACE',
    );
    assert.equal(
      isPrivileged(
        peerCaller(
          cred,
          parseProcStatus(STATUS('1000\t1000\t1000\t1000', '1000\t1000\t1000\t1000', '0000000000040000')),
        ),
      ),
      false,
      'CAP_SYS_CHROOT (bit 18) is not enough',
    );
    assert.equal(
      isPrivileged(peerCaller(cred, parseProcStatus(STATUS('0\t0\t0\t0', '0\t0\t0\t0', '000001ffffffffff')))),
      false,
      'the pid now belongs to root: its capabilities lend the caller nothing',
    );
    assert.equal(isPrivileged(peerCaller(cred, undefined)), false, 'caller gone: unprivileged');
    assert.equal(isPrivileged(TOKEN), true);
    assert.equal(isPrivileged({ kind: 'operator', via: 'insecure-no-auth' }), true);
    assert.equal(ownerUidOf(TOKEN), 0);
    assert.equal(ownerUidOf(NOBODY), 65534);
  });

  test('rule 1: same uid and gid (real, effective, saved) and dumpable, or privileged', () => {
    assert.equal(
      processDecision(NOBODY, { pid: 7, creds: creds(65534), procDirUid: 65534 }),
      undefined,
      'its own process',
    );
    assert.equal(processDecision(peer(0), { pid: 7, creds: creds(1000) }), undefined, 'root names any');
    assert.equal(
      processDecision(TOKEN, { pid: 7, creds: undefined }),
      undefined,
      'privileged callers are not checked at all: the kernel answers',
    );
    const e = refusal(
      processDecision(NOBODY, { pid: 123, creds: creds(0), procDirUid: 0 }),
      'FORBIDDEN_PROCESS',
      'other_uid',
    );
    assert.equal(
      e.message,
      'you (uid 65534) may not use the sockets of pid 123 (uid 0): a caller may only name processes it could ptrace, same uid or root/CAP_SYS_PTRACE',
    );
    const setuid: ProcCreds = { uids: [65534, 0, 0, 0], gids: [65534, 65534, 65534, 65534], capEff: 0n };
    assert.match(
      refusal(processDecision(NOBODY, { pid: 5, creds: setuid }), 'FORBIDDEN_PROCESS', 'other_uid').message,
      /uids 65534\/0\/0/,
      'a setuid program: its effective uid counts',
    );
    const saved: ProcCreds = { uids: [65534, 65534, 0, 65534], gids: [65534, 65534, 65534, 65534], capEff: 0n };
    refusal(processDecision(NOBODY, { pid: 5, creds: saved }), 'FORBIDDEN_PROCESS', 'other_uid');
    const setgid: ProcCreds = { uids: [65534, 65534, 65534, 65534], gids: [65534, 42, 42, 42], capEff: 0n };
    assert.match(
      refusal(processDecision(NOBODY, { pid: 5, creds: setgid }), 'FORBIDDEN_PROCESS', 'other_gid').message,
      /gids 65534\/42\/42/,
    );
    assert.match(
      refusal(
        processDecision(NOBODY, { pid: 5, creds: creds(65534), procDirUid: 0 }),
        'FORBIDDEN_PROCESS',
        'not_dumpable',
      ).message,
      /not dumpable/,
    );
    assert.match(
      refusal(processDecision(NOBODY, { pid: 5, creds: undefined }), 'SOCKET_NOT_FOUND', 'no_process').message,
      /no process with pid 5/,
    );
  });

  test("rule 2: a caller sees and acts on its own uid's connections; privileged callers on all", () => {
    assert.equal(seesConnection(NOBODY, 65534), true);
    assert.equal(seesConnection(NOBODY, 0), false);
    assert.equal(seesConnection(peer(1000), 65534), false);
    assert.equal(seesConnection(peer(0), 65534), true);
    assert.equal(seesConnection(TOKEN, 1000), true);
    assert.equal(connectionDecision(NOBODY, 17n, 65534), undefined);
    const e = refusal(connectionDecision(NOBODY, 17n, 0), 'FORBIDDEN_CONNECTION', 'other_owner');
    assert.match(
      e.message,
      /^connection 17 is not yours: a caller may see, hand off or abort only the connections its uid created \(you are uid 65534;/,
    );
    assert.doesNotMatch(e.message, /uid 0\b/, 'the owner is not told');
  });
});

describe('authorization: the pure parts around it', () => {
  test('struct ucred: pid, uid, gid (unsigned)', () => {
    const b = Buffer.alloc(12);
    b.writeInt32LE(4242, 0);
    b.writeUInt32LE(4_294_967_294, 4);
    b.writeUInt32LE(65534, 8);
    assert.deepEqual(decodeUcred(b), { pid: 4242, uid: 4_294_967_294, gid: 65534 });
    assert.throws(() => decodeUcred(Buffer.alloc(8)), RangeError);
  });

  test('/etc/group lookup', () => {
    const text = 'root:x:0:\nbaton:x:998:www-data,nginx\nbroken:x:\n';
    assert.equal(gidInGroupFile(text, 'baton'), 998);
    assert.equal(gidInGroupFile(text, 'root'), 0);
    assert.equal(gidInGroupFile(text, 'broken'), undefined);
    assert.equal(gidInGroupFile(text, 'bat'), undefined);
  });

  test('owners across a restart: saved for non-root owners, given back only to the same table, id and addresses', () => {
    const a = fakeRecord(1n, { ownerUid: 65534 });
    const b = fakeRecord(2n, { ownerUid: 0 });
    const c = fakeRecord(3n, { ownerUid: 1000 });
    const file = ownersToSave(77, [a, b, c]);
    assert.deepEqual(
      file.owners.map((o) => [o.id, o.uid]),
      [
        ['1', 65534],
        ['3', 1000],
      ],
      "root's are the default, not saved",
    );
    const adopted = () => new Map([a, b, c].map((r) => [r.id, { ...r, ownerUid: 0 }]));
    const same = adopted();
    assert.equal(restoreOwners(JSON.parse(JSON.stringify(file)), 77, same), 2);
    assert.deepEqual(
      [...same.values()].map((r) => r.ownerUid),
      [65534, 0, 1000],
    );
    const other = adopted();
    assert.equal(restoreOwners(file, 78, other), 0, 'another table (baton down, then a new start): nothing');
    assert.deepEqual(
      [...other.values()].map((r) => r.ownerUid),
      [0, 0, 0],
    );
    const moved = adopted();
    (moved.get(1n) as { client: { ip: string; port: number } }).client = { ip: '198.18.9.9', port: 1 };
    assert.equal(restoreOwners(file, 77, moved), 1, 'an entry whose addresses differ gives no owner');
    assert.equal(moved.get(1n)?.ownerUid, 0);
    for (const junk of [
      null,
      'x',
      { version: 2, mapId: 77, owners: file.owners },
      { version: 1, mapId: 77, owners: [{ id: 'x', uid: 1 }, { id: '1', uid: -1 }, null] },
    ]) {
      assert.equal(restoreOwners(junk, 77, adopted()), 0, JSON.stringify(junk));
    }
  });
});
