/**
 * Drives keepalive-program.ts (one keep-alive HTTP connection in the client
 * namespace) from the demo or a test: one request at a time, so the caller
 * can act between requests (hand the connection off at a request boundary).
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../paths.js';
import type { Testbed } from '../testbed/index.js';

export interface Answer {
  status?: number;
  length?: number;
  sha256?: string;
  body?: string;
  /** request sent to last body byte, in the client (ms) */
  ms?: number;
  event?: string;
  code?: string;
}

export class KeepAliveClient {
  readonly events: Answer[] = [];
  /** The client's own port (its connection's 4-tuple toward the VIP). */
  localPort = 0;
  private waiters: Array<(a: Answer) => void> = [];
  private constructor(readonly proc: ChildProcess) {}

  static async start(tb: Testbed, ip: string, port = 80, node = 'client'): Promise<KeepAliveClient> {
    const proc = tb.spawn(
      node,
      process.execPath,
      ['--import', 'tsx', resolve(ROOT, 'lab/clients/keepalive-program.ts'), ip, String(port)],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const c = new KeepAliveClient(proc);
    let ready: () => void = () => {};
    const readyP = new Promise<void>((r) => (ready = r));
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.startsWith('READY ')) {
        c.localPort = Number(line.slice(6));
        return ready();
      }
      const a = JSON.parse(line) as Answer;
      if (a.event) c.events.push(a);
      const w = c.waiters.shift();
      if (w) w(a);
    });
    await Promise.race([
      readyP,
      sleep(10_000).then(() => Promise.reject(new Error('client did not connect within 10 s'))),
    ]);
    return c;
  }

  /** Sends a raw command line (QUIT, RESET). */
  send(cmd: string): void {
    this.proc.stdin!.write(`${cmd}\n`);
  }

  get(path: string, timeoutMs = 10_000): Promise<Answer> {
    const p = new Promise<Answer>((r, rej) => {
      const t = setTimeout(() => rej(new Error(`no answer to GET ${path} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((a) => {
        clearTimeout(t);
        r(a);
      });
    });
    this.proc.stdin!.write(`GET ${path}\n`);
    return p;
  }
}
