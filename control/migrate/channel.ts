/**
 * The LB's end of the blob channel to one agent: a persistent TCP
 * connection, authenticated by the HMAC handshake (control/agent/handshake.ts),
 * carrying many migrations at once. reserve() sends a migration's flow-id
 * reservation and resolves with "held" or a refusal; send() sends its state
 * and resolves with the confirmation or a refusal. Both reject when the
 * channel fails before the reply came (see migrate.ts for what the LB does
 * with its socket then).
 */
import net from 'node:net';
import {
  CHALLENGE_BYTES,
  decodeChallenge,
  decodeVerdict,
  encodeResponse,
  HandshakeError,
  VERDICT_BYTES,
} from '../agent/handshake.js';
import { type Confirmation, type Held, MessageReader, parseReply, type Refusal, type Reply } from '../agent/reply.js';
import { BatonError } from '../errors.js';

export interface ChannelOptions {
  secret: Buffer;
  /** Where the agent's blob endpoint listens. */
  host?: string;
  port?: number;
  /** An already connected socket (e.g. created in another network namespace); host/port are ignored. */
  socket?: net.Socket;
  timeoutMs?: number;
}

interface Pending {
  id: string;
  /** What answers this blob besides a refusal: held (a reservation) or a confirmation (a state). */
  expects: 'held' | 'confirmation';
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export class AgentChannel {
  private readonly pending: Pending[] = [];
  private readonly reader = new MessageReader();
  private failure: Error | undefined;

  private constructor(private readonly socket: net.Socket) {}

  /** Connects and authenticates; rejects with AGENT_UNREACHABLE or AGENT_UNAUTHENTICATED. */
  static async connect(opts: ChannelOptions): Promise<AgentChannel> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const s = opts.socket ?? net.connect({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
    s.setNoDelay(true);
    const where = opts.socket ? 'the agent' : `the agent at ${opts.host}:${opts.port}`;
    try {
      await handshake(s, opts.secret, timeoutMs, where);
    } catch (e) {
      s.destroy();
      throw e;
    }
    const ch = new AgentChannel(s);
    s.on('data', (c: Buffer) => ch.onData(c));
    s.on('error', (e) => ch.fail(e));
    s.on('close', () => ch.fail(new Error('the agent closed the channel')));
    return ch;
  }

  /** Sends one state blob and waits for the agent's reply to it: a confirmation or a refusal. */
  send(migrationId: bigint, blob: Buffer): Promise<Confirmation | Refusal> {
    return this.request(migrationId, blob, 'confirmation') as Promise<Confirmation | Refusal>;
  }

  /** Sends a reservation (encodeFlowReservation) and waits for the agent's reply: held or a refusal. */
  reserve(migrationId: bigint, reservation: Buffer): Promise<Held | Refusal> {
    return this.request(migrationId, reservation, 'held') as Promise<Held | Refusal>;
  }

  private request(migrationId: bigint, blob: Buffer, expects: Pending['expects']): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ id: migrationId.toString(), expects, resolve, reject });
      this.socket.write(blob);
    });
  }

  /** False once the channel failed or was closed: a new one must be connected. */
  get open(): boolean {
    return this.failure === undefined;
  }

  get inFlight(): number {
    return this.pending.length;
  }

  close(): void {
    this.socket.end();
    this.fail(new Error('the channel was closed'));
  }

  private onData(c: Buffer): void {
    let msgs: unknown[];
    try {
      msgs = this.reader.push(c);
    } catch (e) {
      this.socket.destroy();
      this.fail(e as Error);
      return;
    }
    for (const m of msgs) {
      let r: Reply;
      try {
        r = parseReply(m);
      } catch (e) {
        this.socket.destroy();
        this.fail(e as Error);
        return;
      }
      // The agent answers in order; a refusal of a blob it could not decode names id 0: the oldest. A
      // reservation and its state share an id: the first pending one is the reservation, answered first.
      const i = r.migrationId === '0' ? 0 : this.pending.findIndex((p) => p.id === r.migrationId);
      const p = i >= 0 ? this.pending[i] : undefined;
      if (p && r.ok && ('held' in r ? p.expects !== 'held' : p.expects !== 'confirmation')) {
        this.socket.destroy();
        this.fail(
          new Error(
            `the agent answered migration ${r.migrationId} out of step (${'held' in r ? 'held' : 'confirmed'} where ${p.expects} was due)`,
          ),
        );
        return;
      }
      if (p) this.pending.splice(i, 1);
      p?.resolve(r);
    }
  }

  private fail(e: Error): void {
    if (!this.failure)
      this.failure = new BatonError(
        'AGENT_UNREACHABLE',
        `the channel to the agent failed: ${e.message}`,
        'channel_failed',
        {
          cause: e,
        },
      );
    for (const p of this.pending.splice(0)) p.reject(this.failure);
  }
}

function handshake(s: net.Socket, secret: Buffer, timeoutMs: number, where: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let stage: 'challenge' | 'verdict' = 'challenge';
    const done = (e?: Error): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
      if (e) reject(e);
      else {
        if (buf.length) s.unshift(buf);
        resolve();
      }
    };
    const timer = setTimeout(
      () =>
        done(
          new BatonError(
            'AGENT_UNREACHABLE',
            `${where} did not complete the handshake within ${timeoutMs} ms`,
            'timeout',
          ),
        ),
      timeoutMs,
    );
    const onError = (e: Error): void =>
      done(new BatonError('AGENT_UNREACHABLE', `cannot reach ${where}: ${e.message}`, 'connect', { cause: e }));
    const onClose = (): void =>
      done(new BatonError('AGENT_UNREACHABLE', `${where} closed the channel during the handshake`, 'closed'));
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      try {
        if (stage === 'challenge' && buf.length >= CHALLENGE_BYTES) {
          const nonce = decodeChallenge(buf.subarray(0, CHALLENGE_BYTES));
          buf = buf.subarray(CHALLENGE_BYTES);
          s.write(encodeResponse(secret, nonce));
          stage = 'verdict';
        }
        if (stage === 'verdict' && buf.length >= VERDICT_BYTES) {
          const ok = decodeVerdict(buf.subarray(0, VERDICT_BYTES));
          buf = buf.subarray(VERDICT_BYTES);
          done(
            ok
              ? undefined
              : new BatonError('AGENT_UNAUTHENTICATED', `${where} refused this LB's shared secret`, 'secret_mismatch'),
          );
        }
      } catch (e) {
        if (!(e instanceof HandshakeError)) throw e;
        done(new BatonError('AGENT_UNAUTHENTICATED', `${where} is not a baton agent: ${e.message}`, 'protocol'));
      }
    };
    s.on('data', onData);
    s.on('error', onError);
    s.on('close', onClose);
  });
}
