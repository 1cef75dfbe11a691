/**
 * scripts/system-commands (the one list of the system commands baton, its
 * tests, demo and benchmarks run; scripts/setup installs from it) and the
 * scanner that finds the commands a source file spawns, so a test can fail
 * when one is missing from the list. Pure functions: no file or process
 * access here.
 *
 * What the scanner recognises (in TypeScript source text):
 *   - spawn/spawnSync/execFile/execFileSync/execSync/cpSpawn('cmd', ...): the
 *     first argument when it is a string literal (execSync: the first word);
 *   - run(['cmd', ...]) / runSync(['cmd', ...]): argv arrays (lab/testbed/exec.ts);
 *   - <testbed>.exec(node, 'cmd', ...) / <testbed>.spawn(node, 'cmd', ...):
 *     the command run inside a testbed namespace (second argument);
 *   - 'netns', 'exec', <ns>, 'cmd' in an argv array (ip netns exec), and
 *     ...nsArgv(...), 'cmd';
 *   - 'sh'/'bash' -c/-ec '<script>': every command word of the script;
 *   - functions of the same directory that pass their first parameter to one
 *     of the spawners (e.g. `function command(file: string, ...)` in
 *     control/doctor/system.ts), called with a string literal;
 *   - string arrays in consts whose name ends in COMMANDS (bench/run.ts).
 * Commands built at run time from other values are not seen: keep them literal.
 */

export const GROUPS = ['build', 'runtime', 'test', 'demo', 'bench'] as const;
export type Group = (typeof GROUPS)[number];

export interface ListEntry {
  /** a command name, or an absolute path (glob) of a file */
  what: string;
  /** Debian package; '-' for a prerequisite setup does not install */
  pkg: string;
  needed: Group[];
  /** service setup stops after installing, or '-' */
  service: string;
  why: string;
  line: number;
}

/** Parses scripts/system-commands; throws naming the line of the first malformed entry. */
export function parseCommandList(text: string): ListEntry[] {
  const out: ListEntry[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const [what, pkg, needed, service, ...why] = t.split(/\s+/);
    if (!what || !pkg || !needed || !service || why.length === 0)
      throw new Error(`line ${line}: expected "what package needed service why...", got ${JSON.stringify(t)}`);
    if (!/^(\/[^\s]+|[A-Za-z0-9][A-Za-z0-9_.+-]*)$/.test(what))
      throw new Error(`line ${line}: ${JSON.stringify(what)} is neither a command name nor an absolute path`);
    if (pkg !== '-' && !/^[a-z0-9][a-z0-9.+-]+$/.test(pkg))
      throw new Error(`line ${line}: ${JSON.stringify(pkg)} is not a Debian package name`);
    const groups = needed.split(',');
    for (const g of groups)
      if (!(GROUPS as readonly string[]).includes(g))
        throw new Error(`line ${line}: unknown group ${JSON.stringify(g)} (known: ${GROUPS.join(', ')})`);
    if (seen.has(what)) throw new Error(`line ${line}: ${what} is listed twice`);
    seen.add(what);
    out.push({ what, pkg, needed: groups as Group[], service, why: why.join(' '), line });
  });
  return out;
}

export interface Spawned {
  command: string;
  /** 1-based line of the call */
  line: number;
}

// Template literals included (with their ${...} parts: a word that starts with one is skipped).
const STR = String.raw`'([^'\\\n]*)'|"([^"\\\n]*)"|\x60([^\x60\\]*)\x60`;
const COMMAND_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
/** A string literal's text from the three alternative groups of STR. */
const lit = (m: RegExpExecArray, at: number): string | undefined => m[at] ?? m[at + 1] ?? m[at + 2];

const SPAWNERS = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'cpSpawn'];
const SHELLS = new Set(['sh', 'bash', 'dash']);
/** Shell words that are no commands (builtins, keywords) when they start a script's segment. */
const SHELL_BUILTINS = new Set([
  'cd',
  'command',
  'exec',
  'exit',
  'export',
  'set',
  'shift',
  'trap',
  'true',
  'false',
  'echo',
  'printf',
  'read',
  'test',
  '[',
  'if',
  'then',
  'else',
  'fi',
  'for',
  'do',
  'done',
  'while',
  'case',
  'esac',
  'wait',
  'kill',
  'local',
  'return',
  ':',
]);

/** Command words of a shell script: the first word of each pipeline/list segment. */
export function shellScriptCommands(script: string): string[] {
  const out: string[] = [];
  // ${...} of a template literal is one opaque word (its parentheses are not the shell's).
  for (const seg of script.replace(/\$\{[^}]*\}/g, '$_').split(/\|\||&&|[|;&\n()]/)) {
    const words = seg
      .trim()
      .split(/\s+/)
      .filter((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)); // VAR=x cmd
    const w = words[0];
    if (!w || w.startsWith('$') || w.startsWith('"') || w.startsWith("'")) continue;
    if (SHELL_BUILTINS.has(w)) {
      // `exec cmd` and `command cmd` run cmd
      if ((w === 'exec' || w === 'command') && words[1] && !words[1].startsWith('-') && !/^["'$]/.test(words[1]))
        out.push(words[1]);
      continue;
    }
    if (COMMAND_NAME.test(w)) out.push(w);
  }
  return out;
}

function lineAt(src: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (src.charCodeAt(i) === 10) n++;
  return n;
}

/**
 * Names of functions in `src` that spawn their first parameter, e.g.
 * `function outputOf(cmd: string, args: string[]) { ... spawnSync(cmd, ...`.
 */
export function spawningWrappers(src: string): string[] {
  const fns: { name: string; param: string; body: string }[] = [];
  const re = /function\s+([A-Za-z_$][\w$]*)\s*\(\s*([A-Za-z_$][\w$]*)\s*:\s*string\b/g;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    const end = src.indexOf('\n}', m.index);
    fns.push({ name: m[1]!, param: m[2]!, body: src.slice(m.index, end < 0 ? undefined : end + 2) });
  }
  // To a fixed point: a function passing its parameter to a wrapper is one too (version() -> outputOf() -> spawnSync()).
  const spawners = new Set(SPAWNERS);
  const names: string[] = [];
  for (let grew = true; grew; ) {
    grew = false;
    for (const f of fns) {
      if (spawners.has(f.name)) continue;
      if (new RegExp(String.raw`(?<![\w$.])(?:${[...spawners].join('|')})\(\s*${f.param}\b`).test(f.body)) {
        spawners.add(f.name);
        names.push(f.name);
        grew = true;
      }
    }
  }
  return names;
}

/**
 * Commands `src` spawns, by the rules in this module's header. `wrappers`:
 * more function names that spawn their first (string) argument.
 */
export function spawnedCommands(src: string, wrappers: readonly string[] = []): Spawned[] {
  // Comment lines (doc comments, // lines) describe calls; they do not make them.
  const code = src
    .split('\n')
    .map((l) => (/^\s*(\/\/|\*|\/\*)/.test(l) ? '' : l))
    .join('\n');
  const out: Spawned[] = [];
  const add = (command: string | undefined, index: number) => {
    if (command) out.push({ command, line: lineAt(code, index) });
  };
  const scan = (re: RegExp, f: (m: RegExpExecArray) => void) => {
    for (let m = re.exec(code); m; m = re.exec(code)) f(m);
  };

  // spawn('cmd', ...), and the same-directory wrappers: not as a method (x.spawn is the testbed's).
  const direct = [...SPAWNERS, ...wrappers].join('|');
  scan(new RegExp(String.raw`(?<![\w$.])(?:${direct})\(\s*(?:${STR})`, 'g'), (m) => add(lit(m, 1), m.index));
  // execSync('cmd args') runs a shell.
  scan(new RegExp(String.raw`(?<![\w$.])execSync\(\s*(?:${STR})`, 'g'), (m) => {
    for (const c of shellScriptCommands(lit(m, 1) ?? '')) add(c, m.index);
  });
  // run(['cmd', ...]) / runSync(['cmd', ...])
  scan(new RegExp(String.raw`(?<![\w$.])(?:run|runSync)\(\s*\[\s*(?:${STR})`, 'g'), (m) => add(lit(m, 1), m.index));
  // tb.exec(node, 'cmd', ...) / tb.spawn(node, 'cmd', ...): the first argument is a node (a literal or an expression without commas).
  scan(new RegExp(String.raw`\.(?:exec|spawn)\(\s*(?:'[^'\n]*'|"[^"\n]*"|[\w$.!\[\]]+)\s*,\s*(?:${STR})`, 'g'), (m) =>
    add(lit(m, 1), m.index),
  );
  // ['netns', 'exec', ns, 'cmd'] and [...tb.nsArgv(...), 'cmd']
  scan(new RegExp(String.raw`['"]netns['"]\s*,\s*['"]exec['"]\s*,\s*[^,\]]+,\s*(?:${STR})`, 'g'), (m) =>
    add(lit(m, 1), m.index),
  );
  scan(new RegExp(String.raw`\.\.\.[\w$.]*nsArgv\([^)]*\)\s*,\s*(?:${STR})`, 'g'), (m) => add(lit(m, 1), m.index));
  // 'sh', '-c' | '-ec', '<script>' (an argv array, or a call's arguments and its array)
  scan(
    new RegExp(String.raw`['"](${[...SHELLS].join('|')})['"]\s*,\s*\[?\s*['"]-e?c['"]\s*,\s*(?:${STR})`, 'g'),
    (m) => {
      add(m[1], m.index);
      for (const c of shellScriptCommands(lit(m, 2) ?? '')) add(c, m.index);
    },
  );
  // const REQUIRED_COMMANDS = ['a', 'b'] as const;
  scan(/\b[A-Z_]*COMMANDS\s*(?::[^=]+)?=\s*\[([^\]]*)\]/g, (m) => {
    for (const s of m[1]!.matchAll(/'([^'\n]*)'|"([^"\n]*)"/g)) add(s[1] ?? s[2], m.index);
  });
  // Paths (./layout, join(dir, 'x')) and interpolations are not system commands.
  return out.filter((s) => COMMAND_NAME.test(s.command));
}

export interface Missing {
  file: string;
  line: number;
  command: string;
}

/**
 * The commands spawned by `files` (path -> source) that the list does not
 * have. Wrappers are looked for in each file's directory.
 */
export function unlistedCommands(files: ReadonlyMap<string, string>, list: readonly ListEntry[]): Missing[] {
  const listed = new Set(list.filter((e) => !e.what.startsWith('/')).map((e) => e.what));
  const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/') + 1);
  const wrappersByDir = new Map<string, string[]>();
  for (const [path, src] of files) {
    const d = dirOf(path);
    wrappersByDir.set(d, [...(wrappersByDir.get(d) ?? []), ...spawningWrappers(src)]);
  }
  const missing: Missing[] = [];
  for (const [path, src] of files) {
    for (const s of spawnedCommands(src, wrappersByDir.get(dirOf(path)) ?? [])) {
      if (!listed.has(s.command)) missing.push({ file: path, line: s.line, command: s.command });
    }
  }
  return missing;
}
