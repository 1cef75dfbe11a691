/**
 * scripts/system-commands is the one list of the system commands baton runs
 * (issue 9: `nft` was exec'd by a test and never installed by setup, so a
 * fresh machine failed). These tests keep the list complete and true:
 * every command a source spawns is listed, scripts/setup reads the same
 * list, and each listed command comes from the Debian package it names.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import {
  type ListEntry,
  parseCommandList,
  shellScriptCommands,
  spawnedCommands,
  spawningWrappers,
  unlistedCommands,
} from '../lib/system-commands.js';

const ROOT = resolve(import.meta.dirname, '../..');
const LIST_PATH = join(ROOT, 'scripts/system-commands');
const list = parseCommandList(readFileSync(LIST_PATH, 'utf8'));
const commands = list.filter((e) => !e.what.startsWith('/'));
const DEFAULT_GROUPS = ['build', 'runtime', 'test', 'demo'];

/**
 * The scanner and this test hold synthetic sources on purpose (commands that
 * do not exist); what they really run (sh, dpkg) is listed all the same.
 */
const SELF = new Set(['test/lib/system-commands.ts', 'test/unit/system-commands.test.ts']);

/** TypeScript/JavaScript sources and node scripts under the five trees. */
function sources(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, d.name);
      if (d.isDirectory()) {
        if (d.name !== 'node_modules' && d.name !== 'results') walk(p);
        continue;
      }
      const text = readFileSync(p, 'utf8');
      const rel = relative(ROOT, p);
      if (SELF.has(rel)) continue;
      if (/\.(ts|js|mjs|cjs)$/.test(d.name) || (!d.name.includes('.') && text.startsWith('#!/usr/bin/env node')))
        files.set(rel, text);
    }
  };
  for (const top of ['control', 'lab', 'scripts', 'test', 'bench']) walk(join(ROOT, top));
  return files;
}

describe('the list', () => {
  test('parses, and names nft (nftables) for the tests', () => {
    assert.ok(commands.length > 20, `only ${commands.length} commands listed`);
    const nft = list.find((e) => e.what === 'nft');
    assert.equal(nft?.pkg, 'nftables');
    assert.ok(nft?.needed.includes('test'));
    assert.equal(list.find((e) => e.what === 'haproxy')?.needed.join(','), 'bench', 'HAProxy is for benchmarks only');
  });

  test('malformed entries are refused with their line', () => {
    assert.throws(() => parseCommandList('# c\nnft nftables tset - x\n'), /line 2: unknown group "tset"/);
    assert.throws(() => parseCommandList('nft nftables test\n'), /line 1: expected/);
    assert.throws(
      () => parseCommandList('nft nftables test - a\nnft nftables test - b\n'),
      /line 2: nft is listed twice/,
    );
  });
});

describe('scanner', () => {
  test('finds every form of spawn in a synthetic source', () => {
    const src = [
      "import { spawn, spawnSync, execFile, execFileSync, execSync } from 'node:child_process';",
      "spawn('alpha', ['-x']);",
      'const r = spawnSync("bravo");',
      "execFile('charlie', [], cb); execFileSync(`delta`, ['x']);",
      "execSync('echo hi | echo-not-builtin --x');",
      "await run(['foxtrot', '-n', ns]);",
      "runSync(['golf']);",
      "await tb.exec('client', 'hotel', ['-sS']);",
      "tb.spawn(node, 'india', args, { stdio: 'ignore' });",
      "execFileSync('ip', ['netns', 'exec', ns, 'juliet', '-f', '-']);",
      "const argv = [...tb.nsArgv('lb', { bpffs: true }), 'kilo', 'map'];",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text the scanner reads, template and all.
      "await tb.exec('client', 'sh', ['-c', `lima -sS '${v.url(path)}' | mike`]);",
      "spawnSync('bash', ['-ec', 'mount --bind \"$1\" /x; shift; exec november \"$@\"']);",
      'const REQUIRED_COMMANDS = [\'oscar\', "papa"] as const;',
      'function outputOf(cmd: string, args: string[]): string {',
      '  return spawnSync(cmd, args).stdout;',
      '}',
      'function version(cmd: string, args: string[]): string {',
      '  return outputOf(cmd, args);',
      '}',
      "version('quebec', ['-v']);",
      "// spawn('not-a-call-in-a-comment')",
      " * execFile('nor-in-a-doc-comment')",
      "spawnSync(join(dir, 'layout')); spawn(process.execPath, []); /^x/.exec('romeo');",
    ].join('\n');
    const found = spawnedCommands(src, spawningWrappers(src)).map((s) => s.command);
    assert.deepEqual(
      [...new Set(found)].sort(),
      [
        'alpha',
        'bravo',
        'charlie',
        'delta',
        'echo-not-builtin',
        'foxtrot',
        'golf',
        'hotel',
        'india',
        'ip',
        'juliet',
        'kilo',
        'bash',
        'sh',
        'lima',
        'mike',
        'mount',
        'november',
        'oscar',
        'papa',
        'quebec',
      ].sort(),
    );
    assert.deepEqual(spawningWrappers(src).sort(), ['outputOf', 'version']);
  });

  test('shell scripts: command words, not builtins or arguments', () => {
    // `command -v x` only looks x up; `command x` runs it.
    assert.deepEqual(
      shellScriptCommands(
        'FOO=1 curl -s x | sha256sum; cd /; exec nginx -g "daemon off;" && command -v haproxy || command wrk',
      ),
      ['curl', 'sha256sum', 'nginx', 'wrk'],
    );
  });

  test('an unlisted command is reported with its file and line, a listed one is not', () => {
    const fake = new Map([
      [
        'test/e2e/x.test.ts',
        "const a = 1;\nawait tb.exec('lb', 'nft', ['-f', '-']);\nspawnSync('no-such-tool-baton', []);\n",
      ],
      [
        'control/doctor/y.ts',
        'export function command(file: string, args: string[]) {\n  return execFileSync(file, args);\n}\n',
      ],
      ['control/doctor/z.ts', "command('ethtool', ['-k', dev]); command('zzz-unlisted', []);\n"],
    ]);
    assert.deepEqual(unlistedCommands(fake, list), [
      { file: 'test/e2e/x.test.ts', line: 3, command: 'no-such-tool-baton' },
      { file: 'control/doctor/z.ts', line: 1, command: 'zzz-unlisted' },
    ]);
    // Without nft in the list, the tcp-repair test's exec is caught (issue 9).
    assert.deepEqual(
      unlistedCommands(
        new Map([['t.ts', "execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'])"]]),
        list.filter((e) => e.what !== 'nft'),
      ),
      [{ file: 't.ts', line: 1, command: 'nft' }],
    );
  });
});

test('every command control/, lab/, scripts/, test/ and bench/ spawn is in scripts/system-commands', () => {
  const files = sources();
  assert.ok(files.has('test/e2e/tcp-repair.test.ts') && files.has('scripts/testbed'), 'scanned the trees');
  const missing = unlistedCommands(files, list);
  assert.deepEqual(
    missing.map((m) => `${m.file}:${m.line}: ${m.command}`),
    [],
    'add these to scripts/system-commands (command, Debian package, who needs it), so scripts/setup installs them',
  );
});

test('scripts/setup reads the same list: on a PATH without the commands it names every one of them', () => {
  const empty = mkdtempSync(join(tmpdir(), 'baton-setup-path-'));
  try {
    const dirnameBin = spawnSync('sh', ['-c', 'command -v dirname'], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(dirnameBin, join(empty, 'dirname')); // setup's own cd
    const env = { PATH: empty };
    const builtin = (c: string) => spawnSync('/bin/sh', ['-c', 'command -v "$1"', '_', c], { env }).status === 0;
    for (const [args, groups] of [
      [[], DEFAULT_GROUPS],
      [['bench'], ['bench']],
    ] as const) {
      const r = spawnSync('/bin/sh', [join(ROOT, 'scripts/setup'), '--dry-run', ...args], { env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const printed = r.stdout.trim().split('\n').filter(Boolean).sort();
      const expected = list
        .filter((e) => e.needed.some((g) => (groups as readonly string[]).includes(g)))
        .filter((e) => (e.what.startsWith('/') ? !globExists(e.what) : !builtin(e.what)))
        .map((e) => `${e.what} ${e.pkg}`)
        .sort();
      assert.deepEqual(printed, expected);
      if (groups === DEFAULT_GROUPS)
        assert.ok(printed.includes('nft nftables') && !printed.includes('haproxy haproxy'));
    }
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

/** Whether a path with one '*' component matches a file, as setup's `for f in $1` expands it. */
function globExists(pattern: string): boolean {
  const parts = pattern.split('/');
  const i = parts.findIndex((p) => p.includes('*'));
  if (i < 0) return existsSync(pattern);
  const base = parts.slice(0, i).join('/') || '/';
  const re = new RegExp(`^${parts[i]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return (
    existsSync(base) &&
    readdirSync(base).some((d) => re.test(d) && existsSync([base, d, ...parts.slice(i + 1)].join('/')))
  );
}

/**
 * The paths a command is reached through, in order: where PATH finds it,
 * then every symlink step (alternatives), each also with and without the
 * /usr prefix (merged /usr: dpkg knows /sbin/ip, PATH finds /usr/sbin/ip).
 */
function pathsOf(found: string): string[] {
  const out: string[] = [];
  let p = found;
  for (let i = 0; i < 10; i++) {
    out.push(p, p.startsWith('/usr/') ? p.slice(4) : `/usr${p}`);
    if (!lstatSync(p).isSymbolicLink()) break;
    p = resolve(dirname(p), readlinkSync(p));
  }
  return out;
}

/** Entries whose command, where it is installed here, comes from another package than listed; and those outside dpkg. */
function packageMismatches(entries: readonly ListEntry[]): { wrong: string[]; notDpkg: string[] } {
  const wrong: string[] = [];
  const notDpkg: string[] = [];
  const located = entries
    .filter((e) => e.pkg !== '-' && !e.what.startsWith('/'))
    .map((e) => ({
      e,
      found: spawnSync('sh', ['-c', 'command -v "$1"', '_', e.what], { encoding: 'utf8' }).stdout.trim(),
    }))
    .filter((x) => x.found.startsWith('/')) // not installed here (bench-only tools), or a shell builtin
    .map((x) => ({ ...x, paths: pathsOf(x.found) }));
  // One dpkg -S for every path ("pkg[, pkg]: /path" per known path; unknown ones only on stderr).
  const ownersOf = new Map<string, string[]>();
  const r = spawnSync('dpkg', ['-S', ...new Set(located.flatMap((x) => x.paths))], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  for (const line of r.stdout.split('\n')) {
    const m = /^([^/]+?): (\/.*)$/.exec(line);
    if (m && !line.startsWith('diversion'))
      ownersOf.set(
        m[2]!,
        m[1]!.split(', ').map((p) => p.replace(/:[a-z0-9]+$/, '')),
      );
  }
  for (const { e, found, paths } of located) {
    const owners = new Set(paths.flatMap((p) => ownersOf.get(p) ?? []));
    if (owners.size === 0) notDpkg.push(`${e.what} (${found})`);
    else if (!owners.has(e.pkg))
      wrong.push(`${e.what}: listed as ${e.pkg}, here from ${[...owners].join(', ')} (${found})`);
  }
  return { wrong, notDpkg };
}

const noDpkg = spawnSync('dpkg', ['--version']).error ? 'no dpkg (not Debian)' : false;

test('each listed command here comes from the Debian package the list names', { skip: noDpkg }, () => {
  const { wrong, notDpkg } = packageMismatches(list);
  // A command outside dpkg's files (pyenv's python3, /usr/local) is this machine's own install, not a wrong entry.
  if (notDpkg.length) console.log(`# not from a Debian package on this machine: ${notDpkg.join(', ')}`);
  assert.deepEqual(wrong, []);
});

test('a command listed under the wrong package is caught', { skip: noDpkg }, () => {
  const sh = list.find((e) => e.what === 'sh')!;
  const { wrong } = packageMismatches([{ ...sh, pkg: 'nftables' }]);
  assert.equal(wrong.length, 1);
  assert.match(wrong[0]!, /^sh: listed as nftables, here from dash/);
});
