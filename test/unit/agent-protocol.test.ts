/**
 * The agent's pure parts: the HMAC handshake, the reply and app-header
 * codecs, the app authorization rule, the SCM_RIGHTS control-message and
 * sockaddr_un layouts, and the configuration's precedence and validation.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mayRegister } from '../../control/agent/authorize.js';
import { loadAgentConfig, parseAppRules } from '../../control/agent/config.js';
import {
  CHALLENGE_BYTES,
  decodeChallenge,
  decodeVerdict,
  encodeChallenge,
  encodeResponse,
  encodeVerdict,
  HandshakeError,
  newNonce,
  parseSecret,
  RESPONSE_BYTES,
  verifyResponse,
} from '../../control/agent/handshake.js';
import {
  encodeMessage,
  MAX_MESSAGE_BYTES,
  MessageError,
  MessageReader,
  parseConnectionHeader,
  parseReply,
  parseVip,
  vipKey,
} from '../../control/agent/reply.js';
import { BatonError } from '../../control/errors.js';
import {
  cmsgLen,
  cmsgSpace,
  decodeRightsCmsgs,
  encodeRightsCmsg,
  encodeSockaddrUn,
} from '../../control/sys/scm-rights.js';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');

describe('handshake', () => {
  test('the right secret is accepted, a wrong one refused, the secret never on the wire', () => {
    const nonce = newNonce();
    const ch = encodeChallenge(nonce);
    assert.equal(ch.length, CHALLENGE_BYTES);
    assert.deepEqual(decodeChallenge(ch), nonce);
    const resp = encodeResponse(SECRET, decodeChallenge(ch));
    assert.equal(resp.length, RESPONSE_BYTES);
    assert.equal(verifyResponse(SECRET, nonce, resp), true);
    assert.equal(verifyResponse(Buffer.from('another secret of 32 bytes......'), nonce, resp), false);
    assert.equal(resp.includes(SECRET), false);
    assert.equal(ch.includes(SECRET), false);
  });
  test('a response to another nonce is refused (no replay)', () => {
    const resp = encodeResponse(SECRET, newNonce());
    assert.equal(verifyResponse(SECRET, newNonce(), resp), false);
  });
  test('malformed messages are HandshakeErrors', () => {
    const nonce = newNonce();
    const resp = encodeResponse(SECRET, nonce);
    assert.throws(() => verifyResponse(SECRET, nonce, resp.subarray(1)), HandshakeError);
    const bad = Buffer.from(resp);
    bad.write('HTTP', 0, 'latin1');
    assert.throws(() => verifyResponse(SECRET, nonce, bad), /wrong magic/);
    const v2 = Buffer.from(resp);
    v2.writeUInt16BE(2, 4);
    assert.throws(() => verifyResponse(SECRET, nonce, v2), /version 2/);
    assert.throws(() => decodeChallenge(Buffer.alloc(CHALLENGE_BYTES)), HandshakeError);
  });
  test('verdicts', () => {
    assert.equal(decodeVerdict(encodeVerdict(true)), true);
    assert.equal(decodeVerdict(encodeVerdict(false)), false);
    const odd = encodeVerdict(true);
    odd.writeUInt8(7, 4);
    assert.throws(() => decodeVerdict(odd), /unknown verdict/);
  });
  test('secrets: trimmed, at least 16 bytes', () => {
    assert.deepEqual(parseSecret(Buffer.from(`${SECRET.toString()}\n`), '/s'), SECRET);
    assert.throws(() => parseSecret(Buffer.from('short\n'), '/s'), /5 bytes; use at least 16/);
  });
});

describe('messages', () => {
  test('framed JSON across arbitrary chunk boundaries', () => {
    const a = encodeMessage({ migrationId: '1', ok: true, queuedBytes: 3 });
    const b = encodeMessage({ migrationId: '2', ok: false, code: 'no_app', reason: 'x' });
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const r = new MessageReader();
      const got = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
      assert.deepEqual(got.map(parseReply), [
        { migrationId: '1', ok: true, queuedBytes: 3 },
        { migrationId: '2', ok: false, code: 'no_app', reason: 'x' },
      ]);
      assert.equal(r.pending, 0);
    }
  });
  test('an oversized length or bad JSON fails the reader', () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(MAX_MESSAGE_BYTES + 1);
    assert.throws(() => new MessageReader().push(big), MessageError);
    const bad = Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{x')]);
    assert.throws(() => new MessageReader().push(bad), /not JSON/);
  });
  test('replies with unknown codes or no id are refused', () => {
    assert.throws(() => parseReply({ migrationId: '1', ok: false, code: 'nope' }), MessageError);
    assert.throws(() => parseReply({ ok: true, queuedBytes: 1 }), MessageError);
    assert.throws(() => parseReply({ migrationId: '1x', ok: true, queuedBytes: 1 }), MessageError);
  });
  test('connection header', () => {
    const h = {
      type: 'connection',
      migrationId: '9',
      client: { ip: '198.18.1.1', port: 40000 },
      vip: { ip: '198.19.0.1', port: 80 },
      queuedBytes: 78,
    };
    assert.deepEqual(parseConnectionHeader(JSON.parse(JSON.stringify(h))), h);
    assert.throws(() => parseConnectionHeader({ ...h, client: { ip: '1.2.3.4', port: 70000 } }), MessageError);
    assert.throws(() => parseConnectionHeader({ ...h, queuedBytes: 1.5 }), MessageError);
  });
  test('VIP spellings', () => {
    assert.deepEqual(parseVip('198.19.0.1:80'), { ip: '198.19.0.1', port: 80 });
    assert.deepEqual(parseVip('[2001:DB8:0::1]:443'), { ip: '2001:db8::1', port: 443 });
    assert.equal(parseVip('300.1.1.1:80'), undefined);
    assert.equal(parseVip('198.19.0.1'), undefined);
    assert.equal(parseVip('198.19.0.1:0'), undefined);
    assert.equal(vipKey({ ip: '2001:db8::1', port: 443 }), '[2001:db8::1]:443');
  });
});

describe('app authorization', () => {
  const rules = parseAppRules('198.19.0.1:80=1000+1001, [2001:db8::1]:443=1002');
  test('root any VIP; others only where listed', () => {
    assert.equal(mayRegister(0, '198.19.0.9:80', rules), true);
    assert.equal(mayRegister(1000, '198.19.0.1:80', rules), true);
    assert.equal(mayRegister(1001, '198.19.0.1:80', rules), true);
    assert.equal(mayRegister(1002, '198.19.0.1:80', rules), false);
    assert.equal(mayRegister(1002, '[2001:db8::1]:443', rules), true);
    assert.equal(mayRegister(1000, '198.19.0.1:81', rules), false);
  });
  test('bad rules', () => {
    assert.throws(() => parseAppRules('198.19.0.1:80'), /VIP:PORT=UID/);
    assert.throws(() => parseAppRules('198.19.0.1:80=bob'), /not a uid/);
    assert.throws(() => parseAppRules('198.19.0.1:0=1'), /port 1..65535/);
  });
});

describe('SCM_RIGHTS and sockaddr_un layouts', () => {
  test('one control message with three descriptors round-trips', () => {
    const b = encodeRightsCmsg([7, 8, 9]);
    assert.equal(b.length, cmsgSpace(12));
    assert.equal(Number(b.readBigUInt64LE(0)), cmsgLen(12));
    assert.equal(cmsgSpace(4), 24);
    assert.equal(cmsgLen(4), 20);
    assert.deepEqual(decodeRightsCmsgs(b, b.length), [7, 8, 9]);
    assert.deepEqual(decodeRightsCmsgs(Buffer.concat([encodeRightsCmsg([3]), encodeRightsCmsg([4])]), 48), [3, 4]);
    assert.deepEqual(decodeRightsCmsgs(b, 10), []);
  });
  test('sockaddr_un', () => {
    const a = encodeSockaddrUn('/run/x.sock');
    assert.equal(a.length, 110);
    assert.equal(a.readUInt16LE(0), 1);
    assert.equal(a.subarray(2, 13).toString(), '/run/x.sock');
    assert.equal(a[13], 0);
    assert.throws(() => encodeSockaddrUn(`/${'a'.repeat(107)}`), /limit is 107/);
  });
});

describe('agent configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-agent-cfg-'));
  const file = join(dir, 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({ listen: '198.18.1.2:7400', peerSecretFile: '/etc/s', apps: { '198.19.0.1:80': [1000] } }),
  );
  test('file < env < flags', () => {
    const fromFile = loadAgentConfig(['--config', file]);
    assert.deepEqual(fromFile.listen, { host: '198.18.1.2', port: 7400 });
    assert.deepEqual(fromFile.apps, { '198.19.0.1:80': [1000] });
    const fromEnv = loadAgentConfig(['--config', file], { BATON_AGENT_LISTEN: '198.18.1.3:7401' });
    assert.deepEqual(fromEnv.listen, { host: '198.18.1.3', port: 7401 });
    const fromFlag = loadAgentConfig(
      ['--config', file, '--listen', '198.18.1.4:7402', '--app', '198.19.0.2:80=5', '--app', '198.19.0.3:80=6'],
      {
        BATON_AGENT_LISTEN: '198.18.1.3:7401',
      },
    );
    assert.deepEqual(fromFlag.listen, { host: '198.18.1.4', port: 7402 });
    assert.deepEqual(fromFlag.apps, { '198.19.0.2:80': [5], '198.19.0.3:80': [6] });
    assert.equal(fromFlag.transparent, false);
    assert.equal(loadAgentConfig(['--peer-secret-file', '/s', '--transparent']).transparent, true);
  });
  test('refusals name their source', () => {
    const code = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof BatonError && e.code === 'CONFIG_INVALID' && re.test(e.message));
    code(() => loadAgentConfig([]), /no --peer-secret-file/);
    code(() => loadAgentConfig(['--peer-secret-file', 'rel']), /--peer-secret-file.*absolute path/);
    code(() => loadAgentConfig(['--peer-secret-file', '/s'], { BATON_AGENT_METRICS: 'nope' }), /BATON_AGENT_METRICS/);
    code(() => loadAgentConfig(['--peer-secret-file', '/s', '--bogus']), /baton agent --help/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ peerSecretFile: '/s', colour: 'red' }));
    code(() => loadAgentConfig(['--config', bad]), /unknown setting "colour"/);
    code(() => loadAgentConfig(['--peer-secret-file', '/s', '--interface', 'eth/0']), /--interface.*interface name/);
    code(() => loadAgentConfig(['--peer-secret-file', '/s', '--pin-dir', 'rel']), /--pin-dir.*absolute path/);
    code(() => loadAgentConfig(['--peer-secret-file', '/s', '--reclaim-linger', 'soon']), /--reclaim-linger/);
  });
  test('the datapath settings: interfaces (repeatable, comma lists, JSON array), pin dir, reclaim linger', () => {
    const none = loadAgentConfig(['--peer-secret-file', '/s']);
    assert.deepEqual(none.interfaces, []);
    assert.equal(none.pinDir, '/sys/fs/bpf/baton-agent');
    assert.equal(none.reclaimLingerMs, 60_000);
    const c = loadAgentConfig([
      '--peer-secret-file',
      '/s',
      '-i',
      'eth0',
      '--interface',
      'eth1,eth2',
      '--pin-dir',
      '/sys/fs/bpf/a/',
      '--reclaim-linger',
      '5s',
    ]);
    assert.deepEqual(c.interfaces, ['eth0', 'eth1', 'eth2']);
    assert.equal(c.pinDir, '/sys/fs/bpf/a');
    assert.equal(c.reclaimLingerMs, 5000);
    const j = join(dir, 'dp.json');
    writeFileSync(j, JSON.stringify({ peerSecretFile: '/s', interfaces: ['veth1'], reclaimLingerMs: '250ms' }));
    const fromFile = loadAgentConfig(['--config', j]);
    assert.deepEqual(fromFile.interfaces, ['veth1']);
    assert.equal(fromFile.reclaimLingerMs, 250);
  });
});
