#!/usr/bin/env node
// containerfile.js -- offline checks of conf/Containerfile (no container
// engine needed): dockerfile-utils' linter, then the image's policy (pinned
// base, multi-stage, numeric non-root USER), and that it agrees with the
// repository: the files it copies, the build packages of tests/run, the
// libraries the built svcmapd links, and the ports of the mapping it ships.
//
// Usage: node containerfile.js CONTAINERFILE REPO_ROOT SVCMAPD
// Prints one line per check; exits 1 if any failed.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const { requirePackages, tap } = require('./tap');

requirePackages(['dockerfile-utils']);
const [file, root, svcmapd] = process.argv.slice(2);
if (!svcmapd) {
  console.error('usage: node containerfile.js CONTAINERFILE REPO_ROOT SVCMAPD');
  process.exit(2);
}

const TAP = tap('containerfile.js');
const check = TAP.check;
function run(cmd, args) {
  try {
    return { ok: true, out: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    return { ok: false, out: `${e.stdout || ''}${e.stderr || ''}${e.code === 'ENOENT' ? 'not found' : ''}` };
  }
}

// ---- the linter: no error, no warning ----

const lintBin = require.resolve('dockerfile-utils/bin/dockerfile-utils');
const lint = run(process.execPath, [lintBin, 'lint', '--json', file]);
let diags = [];
try {
  diags = JSON.parse(lint.out);
} catch (e) {
  diags = [{ message: `unreadable linter output: ${lint.out}` }];
}
check(diags.length === 0, 'dockerfile-utils lint: no diagnostics',
  diags.map((d) => `line ${(d.range ? d.range.start.line : 0) + 1}: ${d.severity}: ${d.message}`).join('; '));

// ---- a small reader: instructions with continuation lines joined ----

const instrs = [];
let cur = null;
for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
  if (cur === null && (/^\s*#/.test(raw) || /^\s*$/.test(raw))) continue;
  if (cur !== null && /^\s*#/.test(raw)) continue; // comments inside a continued instruction
  const line = raw.replace(/\\\s*$/, '');
  cur = cur === null ? line.trim() : `${cur} ${line.trim()}`;
  if (!/\\\s*$/.test(raw)) {
    const m = /^(\S+)\s*(.*)$/.exec(cur);
    instrs.push({ op: m[1].toUpperCase(), arg: m[2] });
    cur = null;
  }
}

const args = {};
const stages = [];
for (const i of instrs) {
  if (i.op === 'ARG' && stages.length === 0) {
    const [k, v] = i.arg.split('=');
    args[k] = v;
  } else if (i.op === 'FROM') {
    const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.arg);
    const image = m[1].replace(/\$\{?(\w+)\}?/g, (_, k) => args[k] || '');
    stages.push({ image, raw: m[1], name: m[2], instrs: [] });
  } else if (stages.length) {
    stages[stages.length - 1].instrs.push(i);
  }
}

check(stages.length >= 2, 'multi-stage: a build stage and a run-time stage', `${stages.length} FROM`);
for (const s of stages) {
  const ref = s.image;
  const m = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(ref);
  const tag = m && m[2];
  check(m && (tag || m[3]), `FROM ${s.raw}: the image is pinned by a tag or digest`, ref || '(empty)');
  check(!tag || tag !== 'latest', `FROM ${s.raw}: not :latest`, ref);
  check(m && /^(docker\.io\/)?(library\/)?debian$/.test(m[1]) && /^(12|bookworm)([.-]|$)/.test(tag || ''),
    `FROM ${s.raw}: Debian 12 (bookworm)`, ref);
}
if (stages.length < 2) {
  TAP.finish(true);
}
const build = stages[0];
const final = stages[stages.length - 1];
check(stages.every((s) => s.image === build.image), 'every stage uses the same base (same libraries)');
check(!!build.name, 'the build stage is named');

const runs = (s) => s.instrs.filter((i) => i.op === 'RUN').map((i) => i.arg).join(' ; ');
const aptPackages = (s) => {
  const out = [];
  for (const m of runs(s).matchAll(/apt-get install\s+((?:[^;&|]|\\)+)/g))
    out.push(...m[1].split(/\s+/).filter((w) => w && !w.startsWith('-')));
  return out;
};

// ---- build stage ----

const buildPkgs = aptPackages(build);
const testsRun = fs.readFileSync(path.join(root, 'tests', 'run'), 'utf8');
const want = (/^BUILD_PACKAGES="([^"]*)"/m.exec(testsRun) || [])[1];
check(want !== undefined, 'tests/run names BUILD_PACKAGES');
const missingBuild = (want || '').split(/\s+/).filter((p) => p && !buildPkgs.includes(p));
check(missingBuild.length === 0, 'build stage installs the BUILD_PACKAGES of tests/run', missingBuild.join(' '));
check(/--no-install-recommends/.test(runs(build)), 'build stage: apt-get --no-install-recommends');
check(/meson setup\b[^;&]*--buildtype[= ]release/.test(runs(build)), 'build stage: meson --buildtype=release');
check(/meson install\b[^;&]*--destdir/.test(runs(build)), 'build stage: meson install to a DESTDIR');

// Every file the stages copy from the context must exist in the repository.
for (const s of stages)
  for (const i of s.instrs.filter((x) => (x.op === 'COPY' || x.op === 'ADD') && !/--from=/.test(x.arg))) {
    const words = i.arg.split(/\s+/).filter((w) => !w.startsWith('--'));
    for (const src of words.slice(0, -1))
      check(fs.existsSync(path.join(root, src)), `COPY ${src}: exists in the repository`);
  }
const ignore = `${file}.dockerignore`;
check(fs.existsSync(ignore) && /node_modules/.test(fs.readFileSync(ignore, 'utf8')) &&
  /^build\*/m.test(fs.readFileSync(ignore, 'utf8')),
  `${path.basename(ignore)} keeps build trees and node_modules out of the context`);

// ---- run-time stage ----

const finalPkgs = aptPackages(final);
const devPkgs = finalPkgs.filter((p) => /-dev$|^(gcc|meson|ninja-build|pkg-config|make)$/.test(p));
check(finalPkgs.length > 0 && devPkgs.length === 0, 'run-time stage: libraries only, no build tools',
  devPkgs.join(' '));
check(/--no-install-recommends/.test(runs(final)) && /rm -rf \/var\/lib\/apt\/lists/.test(runs(final)),
  'run-time stage: --no-install-recommends, apt lists removed');
const fromBuild = final.instrs.filter((i) => i.op === 'COPY' && new RegExp(`--from=${build.name}\\b`).test(i.arg));
check(fromBuild.length > 0, `run-time stage copies from ${build.name}`);

// The packages must provide every library the built binary links: ask ldd
// for the libraries and dpkg which packages hold them (Debian 12 here and in
// CI), and follow the Depends of the packages installed.
const ldd = run('ldd', [svcmapd]);
const dpkg = run('dpkg-query', ['--version']);
if (!ldd.ok || !dpkg.ok) {
  console.log('# skipped the library check: ldd or dpkg-query is missing');
} else {
  const closure = new Set();
  const todo = [...finalPkgs];
  while (todo.length) {
    const p = todo.pop();
    if (closure.has(p)) continue;
    closure.add(p);
    const dep = run('dpkg-query', ['-W', '-f=${Depends}', p]);
    if (dep.ok)
      for (const alt of dep.out.split(','))
        for (const d of alt.split('|')) todo.push(d.trim().split(/[\s:(]/)[0]);
  }
  const sanitized = /\blib(asan|ubsan|tsan)\.so/.test(ldd.out);
  for (const m of ldd.out.matchAll(/=>\s+(\/\S+)/g)) {
    const lib = m[1];
    if (/\/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so/.test(lib)) continue; // the base image's libc6
    // a sanitizer build (tests/run --sanitize) links the sanitizer runtimes;
    // the image's release build does not
    if (sanitized && /\/lib(asan|ubsan|tsan|lsan|stdc\+\+|gcc_s)\.so/.test(lib)) continue;
    const real = fs.realpathSync(lib);
    let owner = run('dpkg-query', ['-S', real]);
    if (!owner.ok) owner = run('dpkg-query', ['-S', lib]);
    const pkg = owner.ok ? owner.out.split(':')[0] : '';
    check(pkg && closure.has(pkg), `run-time stage provides ${path.basename(lib)}`,
      pkg ? `${pkg} is not installed by the run-time stage` : `no package owns ${lib}`);
  }
}

// USER: numeric uid:gid, not root, before the ENTRYPOINT.
const users = final.instrs.filter((i) => i.op === 'USER');
const user = users.length ? users[users.length - 1].arg : '';
check(/^[0-9]+:[0-9]+$/.test(user) && !/^0:/.test(user), 'run-time stage: USER is a numeric non-root uid:gid',
  user || '(none)');

const entry = final.instrs.filter((i) => i.op === 'ENTRYPOINT').pop();
let argv = [];
try {
  argv = JSON.parse(entry.arg);
} catch (e) {
  argv = [];
}
check(Array.isArray(argv) && argv.length > 0, 'ENTRYPOINT in exec form (svcmapd is PID 1 and gets the signals)');
const dests = final.instrs.filter((i) => i.op === 'COPY').map((i) => i.arg.split(/\s+/).pop());
check(dests.includes(argv[0]), `ENTRYPOINT runs the copied binary ${argv[0]}`);
const cfg = argv[argv.indexOf('-c') + 1];
check(argv.includes('-c') && dests.includes(cfg), `ENTRYPOINT -c ${cfg}: the image ships that file`);

// EXPOSE: the DNS port of the shipped mapping on UDP and TCP, and its
// HTTP endpoints.
const copyIni = final.instrs.find((i) => i.op === 'COPY' && !/--from=/.test(i.arg) && i.arg.split(/\s+/).pop() === cfg);
const iniText = copyIni ? fs.readFileSync(path.join(root, copyIni.arg.split(/\s+/)[0]), 'utf8') : '';
const setting = (k) => ((new RegExp(`^${k}\\s*=\\s*([^;#\\n]*)`, 'm').exec(iniText) || [])[1] || '').trim();
const exposed = final.instrs.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.arg.split(/\s+/))
  .map((p) => (p.includes('/') ? p : `${p}/tcp`));
const listenPort = (/:(\d+)\b/.exec(setting('listen')) || [])[1];
check(listenPort && exposed.includes(`${listenPort}/udp`) && exposed.includes(`${listenPort}/tcp`),
  `EXPOSE ${listenPort}/udp and ${listenPort}/tcp (listen of the shipped mapping)`, exposed.join(' '));
for (const k of ['health', 'ready', 'metrics']) {
  const p = (/:(\d+)$/.exec(setting(k)) || [])[1];
  check(p && exposed.includes(`${p}/tcp`), `EXPOSE ${p} ([http] ${k})`);
}
const check_ = run(svcmapd, ['-t', '-c', path.join(root, copyIni ? copyIni.arg.split(/\s+/)[0] : 'missing')]);
check(check_.ok, 'the shipped mapping passes svcmapd -t', check_.out.trim());

TAP.finish();
