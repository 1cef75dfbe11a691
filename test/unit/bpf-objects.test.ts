/**
 * control/bpf/objects.ts: objects are found from baton's package root, the
 * same way from source, from dist/ and from an installed package (issue 9:
 * the built CLI looked in dist/build/bpf), and a missing one names where it
 * was looked for.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import {
  BPF_OBJECTS,
  defaultBpfDir,
  findPackageRoot,
  objectCandidates,
  resolveBpfObject,
} from '../../control/bpf/objects.js';
import { BatonError } from '../../control/errors.js';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'baton-objects-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A package laid out as npm installs it: <prefix>/node_modules/baton/{package.json,dist/control/bpf,build/bpf}. */
function fakeInstall(name: string): { pkg: string; moduleDir: string } {
  const pkg = join(tmp, name, 'node_modules', 'baton');
  const moduleDir = join(pkg, 'dist', 'control', 'bpf');
  mkdirSync(moduleDir, { recursive: true });
  mkdirSync(join(pkg, 'build', 'bpf'), { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'baton', version: '0.0.0' }));
  // A package.json that is not baton's, between the module and the root, is walked past.
  writeFileSync(join(pkg, 'dist', 'package.json'), JSON.stringify({ type: 'module' }));
  return { pkg, moduleDir };
}

test('the package root from the source tree is the checkout', () => {
  assert.equal(findPackageRoot(join(ROOT, 'control', 'bpf')), ROOT);
  assert.equal(findPackageRoot(), ROOT); // this module's own directory (control/bpf under tsx)
  assert.equal(defaultBpfDir(), join(ROOT, 'build', 'bpf'));
});

test('from dist/ of an installed package: <package>/build/bpf, not dist/build/bpf', () => {
  const { pkg, moduleDir } = fakeInstall('installed');
  assert.equal(findPackageRoot(moduleDir), pkg);
  assert.deepEqual(objectCandidates('datapath', {}, moduleDir), [join(pkg, 'build', 'bpf', 'xdp_baton.o')]);
  writeFileSync(join(pkg, 'build', 'bpf', 'tcp_probe.o'), '');
  assert.equal(resolveBpfObject('probe', {}, moduleDir), join(pkg, 'build', 'bpf', 'tcp_probe.o'));
});

test('overrides: a path for one object, a directory for all', () => {
  const { moduleDir } = fakeInstall('overrides');
  const elsewhere = join(tmp, 'objs');
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(join(elsewhere, 'xdp_baton.o'), '');
  writeFileSync(join(elsewhere, 'custom.o'), '');
  assert.equal(resolveBpfObject('datapath', { dir: elsewhere }, moduleDir), join(elsewhere, 'xdp_baton.o'));
  assert.equal(
    resolveBpfObject('datapath', { path: join(elsewhere, 'custom.o'), dir: '/nonexistent' }, moduleDir),
    join(elsewhere, 'custom.o'),
  );
});

test('a missing object: BPF_OBJECT_MISSING naming every place looked at and the fix', () => {
  const { pkg, moduleDir } = fakeInstall('missing');
  assert.throws(
    () => resolveBpfObject('datapath', {}, moduleDir),
    (e: unknown) => {
      assert.ok(e instanceof BatonError);
      assert.equal(e.code, 'BPF_OBJECT_MISSING');
      assert.match(
        e.message,
        new RegExp(`looked at ${join(pkg, 'build', 'bpf', 'xdp_baton.o').replace(/[.]/g, '\\.')}`),
      );
      assert.match(e.message, /make bpf/);
      assert.match(e.message, /--bpf-dir \(BATON_BPF_DIR\)/);
      assert.match(e.message, /--object \(BATON_OBJECT\)/);
      return true;
    },
  );
  assert.throws(
    () => resolveBpfObject('probe', { path: '/nonexistent/p.o' }, moduleDir),
    /looked at \/nonexistent\/p\.o; .*--probe-object \(BATON_PROBE_OBJECT\)/,
  );
  // No baton package above at all.
  const bare = join(tmp, 'bare', 'a');
  mkdirSync(bare, { recursive: true });
  assert.equal(findPackageRoot(bare), undefined);
  assert.throws(() => resolveBpfObject('datapath', {}, bare), /no baton package root .* and no --bpf-dir/);
});

test('every role names a source file in bpf/', () => {
  for (const name of Object.values(BPF_OBJECTS)) assert.ok(existsSync(join(ROOT, 'bpf', `${name}.c`)), `bpf/${name}.c`);
});
