/**
 * Runs test/e2e/programs/frontend.ts in the LB namespace and answers its
 * splice requests with a real Splicer, as the REST API will for real front
 * ends: take the two fds from the front end's process, splice, reply.
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import readline from 'node:readline';
import type { SpliceRecord, Splicer } from '../../control/splice/splicer.js';
import { ROOT } from './env.js';
import type { Testbed } from './testbed.js';

export interface FrontendDriver {
  proc: ChildProcess;
  splices: SpliceRecord[];
  failures: string[];
  fallbacks: string[];
  /** Whether back-end legs take ports from the splicer's leg range (when a local address is known); tests may turn it off. */
  legPorts: boolean;
  stop(): void;
}

export async function startFrontend(
  tb: Testbed,
  splicer: Splicer,
  takeSocket: (pid: number, fd: number) => number,
  listen: { ip: string; port: number },
  backends: string[],
  opts: {
    node?: string;
    /**
     * The LB's address toward a back end (by its ip): its legs then take a
     * port from Splicer.legPort and hold no socket once spliced. Undefined (or
     * an unknown back end): the kernel chooses the port, a socket holds it.
     */
    legLocalIp?: (backendIp: string) => string | undefined;
  } = {},
): Promise<FrontendDriver> {
  const proc = tb.spawn(
    opts.node ?? 'lb',
    process.execPath,
    [
      '--import',
      'tsx',
      resolve(ROOT, 'test/e2e/programs/frontend.ts'),
      listen.ip,
      String(listen.port),
      backends.join(','),
    ],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const d: FrontendDriver = {
    proc,
    splices: [],
    failures: [],
    fallbacks: [],
    legPorts: true,
    stop: () => proc.kill(),
  };
  let ready: () => void = () => {};
  const readyP = new Promise<void>((r) => (ready = r));
  readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
    const [kind, tag, ...rest] = line.split(' ');
    if (kind === 'READY') ready();
    else if (kind === 'PORT' && tag) {
      const [ip, port] = rest;
      const local = ip === undefined || !d.legPorts ? undefined : opts.legLocalIp?.(ip);
      let answer = '- 0';
      try {
        if (local !== undefined)
          answer = `${local} ${splicer.legPort(local, { ip: ip as string, port: Number(port) })}`;
      } catch (e) {
        d.failures.push((e as Error).message); // the range is exhausted: the kernel chooses
      }
      proc.stdin!.write(`LEGPORT ${tag} ${answer}\n`);
    } else if (kind === 'FALLBACK') d.fallbacks.push(`${tag} ${rest.join(' ')}`);
    else if (kind === 'SPLICE' && tag) {
      const [pid, cfd, bfd, prefix] = rest;
      void (async () => {
        let c = -1;
        let b = -1;
        try {
          c = takeSocket(Number(pid), Number(cfd));
          b = takeSocket(Number(pid), Number(bfd));
          const rec = await splicer.splice(c, b, { prefix: Buffer.from(prefix ?? '', 'base64') });
          d.splices.push(rec);
          proc.stdin!.write(`OK ${tag}\n`);
        } catch (e) {
          d.failures.push((e as Error).message);
          proc.stdin!.write(`ERR ${tag} ${(e as Error).message.replace(/\n/g, ' ')}\n`);
        }
      })();
    }
  });
  await Promise.race([
    readyP,
    new Promise((_, rej) => setTimeout(() => rej(new Error('front end did not start within 10 s')), 10_000)),
  ]);
  return d;
}
