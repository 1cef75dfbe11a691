/**
 * The `baton` command line: finds the command, parses its options
 * (node:util parseArgs, strict), runs it, and turns every error into a
 * message that says what to do (or, with --json, the problem document)
 * and an exit code (usage.ts EXIT).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { agentCommand } from '../agent/daemon.js';
import { BatonError } from '../errors.js';
import { type BatonClient, createClient } from '../sdk/client.js';
import { BatonApiError } from '../sdk/errors.js';
import { handoffCommand, splicesLs, splicesRm, splicesShow, statusCommand } from './api-commands.js';
import { type DrainFlags, drainCommand } from './cluster-commands.js';
import { agentDownCommand, downCommand, lbCommand } from './daemon-commands.js';
import { type DoctorFlags, doctorCommand } from './doctor-command.js';
import { COMMAND_HELP, MAIN_HELP } from './help.js';
import { type Io, printJson, processIo } from './io.js';
import { metricsCommand } from './metrics-command.js';
import { EXIT, UsageError } from './usage.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const GLOBAL: Options = {
  api: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const COMMAND_OPTIONS: Record<string, Options> = {
  status: {},
  splices: {
    state: { type: 'string' },
    backend: { type: 'string' },
    limit: { type: 'string' },
    cursor: { type: 'string' },
    all: { type: 'boolean' },
  },
  handoff: { 'quiesce-timeout-ms': { type: 'string' } },
  // `baton lb drain`: an API command under lb (the word right after lb).
  'lb drain': { cancel: { type: 'boolean' }, wait: { type: 'boolean' }, timeout: { type: 'string' } },
  metrics: { 'metrics-url': { type: 'string' }, raw: { type: 'boolean' } },
  doctor: {
    interface: { type: 'string', short: 'i', multiple: true },
    iface: { type: 'string', multiple: true },
    'pin-dir': { type: 'string' },
    'state-dir': { type: 'string' },
    config: { type: 'string', short: 'c' },
    netns: { type: 'string' },
    // --role agent: a back end in migrate mode (control/doctor/agent-checks.ts)
    role: { type: 'string' },
    vip: { type: 'string', multiple: true },
    transparent: { type: 'boolean' },
  },
};

/** Commands run by the daemon module (it parses its own flags). */
const DAEMON_COMMANDS = new Set(['lb', 'down', 'agent']);

/** Global options that take a value, so `baton --api X status` finds "status" as the command. */
const VALUE_OPTIONS = new Set(['--api', '--token']);

function findCommand(argv: string[]): { command: string | undefined; index: number } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string; // i < argv.length
    if (a === '--') return { command: argv[i + 1], index: i + 1 };
    if (VALUE_OPTIONS.has(a)) {
      i++;
      continue;
    }
    if (!a.startsWith('-')) return { command: a, index: i };
  }
  return { command: undefined, index: -1 };
}

export interface MainDeps {
  /** how commands write; default: process stdout/stderr */
  io?: (json: boolean) => Io;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, deps: MainDeps = {}): Promise<number> {
  const { command, index } = findCommand(argv);
  const jsonWanted = argv.includes('--json');
  const io = (deps.io ?? ((j) => processIo(j, env)))(jsonWanted);
  try {
    if (command === 'lb' && argv[index + 1] === 'drain') {
      return await apiCommand(
        io,
        'lb drain',
        [...argv.slice(0, index), ...argv.slice(index + 2)],
        env,
        (api, v, pos) => {
          if (pos.length) throw new UsageError(`lb drain takes no arguments (got ${pos.join(' ')})`, 'lb drain');
          return drainCommand(io, api, v as DrainFlags);
        },
      );
    }
    if (command && DAEMON_COMMANDS.has(command)) {
      const rest = [...argv.slice(0, index), ...argv.slice(index + 1)];
      if (command === 'agent') {
        // `baton agent down`: the first word after `agent` that is not a flag.
        const sub = rest.findIndex((a) => !a.startsWith('-'));
        if (sub >= 0 && rest[sub] === 'down')
          return await agentDownCommand(io, [...rest.slice(0, sub), ...rest.slice(sub + 1)]);
        return await agentCommand(io, rest, env);
      }
      return command === 'lb' ? await lbCommand(io, rest) : await downCommand(io, rest);
    }
    if (command === 'help') {
      const topic = argv[index + 1];
      io.out(topic && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : MAIN_HELP);
      return EXIT.OK;
    }
    if (command === undefined) {
      if (argv.includes('--help') || argv.includes('-h')) {
        io.out(MAIN_HELP);
        return EXIT.OK;
      }
      throw new UsageError('no command given');
    }
    const own = COMMAND_OPTIONS[command];
    if (!own)
      throw new UsageError(
        `unknown command ${JSON.stringify(command)}; the commands are: lb, down, status, splices, handoff, metrics, doctor, agent`,
      );
    const rest = [...argv.slice(0, index), ...argv.slice(index + 1)];
    let values: Record<string, string | boolean | string[] | undefined>;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: rest,
        options: { ...GLOBAL, ...own },
        allowPositionals: true,
        strict: true,
      }) as {
        values: Record<string, string | boolean | string[] | undefined>;
        positionals: string[];
      });
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''), command);
    }
    if (values.help) {
      io.out(COMMAND_HELP[command] ?? MAIN_HELP);
      return EXIT.OK;
    }
    if (command === 'doctor') {
      if (positionals.length)
        throw new UsageError(
          `doctor takes no arguments (got ${positionals.join(' ')}); interfaces go in --interface`,
          command,
        );
      return await doctorCommand(io, values as DoctorFlags);
    }
    if (command === 'metrics') {
      if (positionals.length)
        throw new UsageError(`metrics takes no arguments (got ${positionals.join(' ')})`, command);
      return await metricsCommand(io, values as { 'metrics-url'?: string; raw?: boolean });
    }
    let api: BatonClient;
    try {
      api = createClient({
        ...(values.api ? { url: values.api as string } : {}),
        ...(values.token ? { token: values.token as string } : {}),
        env,
      });
    } catch (e) {
      throw new UsageError(`--api: ${(e as Error).message}`, command);
    }
    try {
      switch (command) {
        case 'status':
          if (positionals.length)
            throw new UsageError(`status takes no arguments (got ${positionals.join(' ')})`, command);
          return await statusCommand(io, api);
        case 'splices': {
          const [sub, id, ...extra] = positionals;
          if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`, command);
          if (sub === 'ls' || sub === 'list') {
            if (id) throw new UsageError(`splices ls takes no id (did you mean: baton splices show ${id}?)`, command);
            return await splicesLs(io, api, values);
          }
          if (sub === 'show' || sub === 'rm') {
            if (!id)
              throw new UsageError(`splices ${sub} needs a connection id (baton splices ls lists them)`, command);
            if (!/^[0-9]{1,20}$/.test(id))
              throw new UsageError(`connection ids are decimal numbers; got ${JSON.stringify(id)}`, command);
            return sub === 'show' ? await splicesShow(io, api, id) : await splicesRm(io, api, id);
          }
          throw new UsageError(
            sub
              ? `unknown splices subcommand ${JSON.stringify(sub)}; use ls, show <id> or rm <id>`
              : 'splices needs a subcommand: ls, show <id> or rm <id>',
            command,
          );
        }
        case 'handoff': {
          const [id, backend, ...extra] = positionals;
          if (!id || !backend || extra.length)
            throw new UsageError(
              'handoff needs exactly two arguments: <id> <backend ip:port>, e.g. baton handoff 17 198.18.3.2:8080',
              command,
            );
          if (!/^[0-9]{1,20}$/.test(id))
            throw new UsageError(`connection ids are decimal numbers; got ${JSON.stringify(id)}`, command);
          return await handoffCommand(io, api, id, backend, values['quiesce-timeout-ms'] as string | undefined);
        }
      }
    } finally {
      api.close();
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (e) {
    return report(io, e);
  }
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** Parses `rest` with the command's options and runs `run` against the API (for commands outside the switch below). */
async function apiCommand(
  io: Io,
  command: string,
  rest: string[],
  env: NodeJS.ProcessEnv,
  run: (api: BatonClient, values: Values, positionals: string[]) => Promise<number>,
): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...GLOBAL, ...COMMAND_OPTIONS[command] },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''), command);
  }
  if (values.help) {
    io.out(COMMAND_HELP[command] ?? MAIN_HELP);
    return EXIT.OK;
  }
  let api: BatonClient;
  try {
    api = createClient({
      ...(values.api ? { url: values.api as string } : {}),
      ...(values.token ? { token: values.token as string } : {}),
      env,
    });
  } catch (e) {
    throw new UsageError(`--api: ${(e as Error).message}`, command);
  }
  try {
    return await run(api, values, positionals);
  } finally {
    api.close();
  }
}

/** What to do about an API error, said in CLI terms (the daemon's detail speaks HTTP). */
const CLI_HINTS: Record<string, string> = {
  UNAUTHORIZED: "give the daemon's token with --token <token> or BATON_TOKEN",
  NOT_FOUND: 'baton splices ls lists the connections baton holds',
  RATE_LIMITED: 'the daemon limits API requests per client (baton lb --rate-limit); retry in a moment',
  NOT_READY: "the datapath is not attached: see the daemon's log and baton doctor",
  FORBIDDEN_OPERATION: 'run it as root on the unix socket, or give the operator token (--token / BATON_TOKEN)',
  DRAINING: 'this LB is draining (baton lb drain); baton lb drain --cancel serves again',
};

function report(io: Io, e: unknown): number {
  if (e instanceof UsageError) {
    if (io.json) printJson(io, { error: 'usage', message: e.message });
    io.err(`baton: ${e.message}\nRun \`baton ${e.command ? `${e.command} ` : ''}--help\` for usage.`);
    return EXIT.USAGE;
  }
  if (e instanceof BatonApiError) {
    const hint = CLI_HINTS[e.code];
    if (io.json) printJson(io, e.toJSON());
    else
      io.err(
        `baton: ${e.title}${e.detail ? `\n  ${e.detail}` : ''}${hint ? `\n  ${hint}` : ''}\n  (code ${e.code}${e.reason ? `, reason ${e.reason}` : ''}${e.code !== 'API_UNREACHABLE' ? `, HTTP ${e.status}` : ''})`,
      );
    return e.code === 'API_UNREACHABLE' ? EXIT.UNREACHABLE : EXIT.FAILED;
  }
  if (e instanceof BatonError) {
    // From the daemon's modules (lb, down): configuration and datapath errors.
    if (io.json)
      printJson(io, { code: e.code, status: e.status, detail: e.message, ...(e.reason ? { reason: e.reason } : {}) });
    else io.err(`baton: ${e.message}\n  (code ${e.code}${e.reason ? `, reason ${e.reason}` : ''})`);
    return e.code === 'CONFIG_INVALID' ? EXIT.USAGE : EXIT.FAILED;
  }
  const msg = e instanceof Error ? e.message : String(e);
  if (io.json) printJson(io, { error: 'failed', message: msg });
  io.err(`baton: ${msg}`);
  return EXIT.FAILED;
}
