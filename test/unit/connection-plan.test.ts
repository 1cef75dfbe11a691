/** connectionStatus and trafficView: the state shown to users and acted on by the sweeper. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FlowState, TRACK_F_FIN, TRACK_F_RST, TRACK_F_SEEN, type Track } from '../../control/datapath/abi.js';
import { connectionStatus, trafficView } from '../../control/datapath/connection-plan.js';

const track = (over: Partial<Track> = {}): Track => ({
  packets: 1n,
  bytes: 10n,
  lastNs: 5n,
  seqEnd: 0,
  ackMax: 0,
  finSeq: 0,
  flags: TRACK_F_SEEN,
  ...over,
});
const FIN = TRACK_F_SEEN | TRACK_F_FIN;

describe('connectionStatus', () => {
  const fwd = (t: Track) => ({ state: FlowState.FORWARD, track: t });
  test("the client entry's state when nothing closes", () => {
    assert.equal(connectionStatus({ state: FlowState.BLOCK, track: track() }, [], undefined).state, 'blocked');
    assert.equal(connectionStatus({ state: FlowState.HOLD, track: track() }, [], undefined).state, 'held');
    assert.equal(connectionStatus(fwd(track()), [track()], track()).state, 'forwarding');
  });
  test('a RST either way: closed', () => {
    assert.equal(connectionStatus(fwd(track({ flags: TRACK_F_SEEN | TRACK_F_RST })), [], undefined).state, 'closed');
    assert.equal(connectionStatus(fwd(track()), [track({ flags: TRACK_F_RST })], undefined).state, 'closed');
  });
  test('both FINs: closing until each is acknowledged by the other side, then closed', () => {
    // Client FIN at 100 (acked when the back end acks 101); back-end FIN at 900 (client acks 901).
    const c = (ackMax: number) => track({ flags: FIN, finSeq: 100, seqEnd: 101, ackMax });
    const b = (ackMax: number) => track({ flags: FIN, finSeq: 900, seqEnd: 901, ackMax });
    assert.equal(connectionStatus(fwd(c(900)), [b(101)], b(101)).state, 'closing', 'back-end FIN unacknowledged');
    assert.equal(connectionStatus(fwd(c(901)), [b(100)], b(100)).state, 'closing', 'client FIN unacknowledged');
    assert.equal(connectionStatus(fwd(c(901)), [b(101)], b(101)).state, 'closed');
  });
  test('the FIN arithmetic wraps modulo 2^32', () => {
    const c = track({ flags: FIN, finSeq: 0xffffffff, ackMax: 0 });
    const b = track({ flags: FIN, finSeq: 0xffffffff, ackMax: 0 });
    assert.equal(connectionStatus(fwd(c), [b], b).state, 'closed');
  });
  test('one FIN: closing; the entry gone: forwarding with no traffic', () => {
    assert.equal(connectionStatus(fwd(track()), [track({ flags: FIN })], track({ flags: FIN })).state, 'closing');
    const s = connectionStatus(undefined, [], undefined);
    assert.equal(s.state, 'forwarding');
    assert.equal(s.toBackend.packets, 0n);
  });
});

describe('trafficView', () => {
  test('sums packets and bytes, ORs flags, keeps the latest time', () => {
    const v = trafficView([track({ lastNs: 3n }), track({ packets: 2n, bytes: 5n, lastNs: 9n, flags: FIN })]);
    assert.deepEqual(v, { packets: 3n, bytes: 15n, fin: true, rst: false, lastSeenNs: 9n });
  });
});
