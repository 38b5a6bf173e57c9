#!/usr/bin/env node
// The package.json `bin` entry: runs bin/did-sync.ts, so an operator's `npx did-sync` and
// `npm run did-sync` execute the same source.
//
// It runs as one bundle esbuild makes of it and its packages the way the Lambda's is made (CommonJS,
// the same packages left out), cached in node_modules/.cache/did-sync and made again whenever a file
// it was made from changed size or time. Measured on a 20,000-call drain (README, benchmark F): tsx's
// loader compiling each file on the way in kept ~30 MB more for the whole run (on Node 20 its hooks
// run in a thread of their own), and packages loaded file by file ~10 MB more on Node 24. Without
// esbuild or a writable cache, tsx runs the source as before.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MALLOC_SETTINGS } from '../lib/malloc-settings.js';
import { NOT_BUNDLED } from '../lib/not-bundled.js';

// did-sync supports Node 22 and 24. On an older Node the AWS SDK prints a nine-line deprecation
// warning on every start, into the operator's output; one line of ours says it instead.
if (Number(process.versions.node.split('.')[0]) < 22) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  if (!process.env.DID_SYNC_QUIET_NODE_NOTE) {
    process.stderr.write(
      `did-sync: note: Node ${process.version} is not supported (end of life); use Node 22 or 24\n`,
    );
  }
}

const ROOT = join(import.meta.dirname, '..');
const SOURCE = join(ROOT, 'bin', 'did-sync.ts');
const CACHE = join(ROOT, 'node_modules', '.cache', 'did-sync');
const BUNDLE = join(CACHE, 'did-sync.cjs');
const MANIFEST = join(CACHE, 'did-sync.inputs.json');
const RECIPE = ['bin/did-sync.js', 'lib/not-bundled.js'];
const PREPARED = 'DID_SYNC_LAUNCHER_PREPARED';

/** Each file the bundle was compiled from, with the size and time it had then. */
function fingerprint(paths) {
  return paths.map((path) => {
    const stat = statSync(join(ROOT, path));
    return [path, stat.size, stat.mtimeMs];
  });
}

function isCurrent() {
  try {
    const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
    if (manifest.source !== SOURCE) return false;
    const now = fingerprint(manifest.inputs.map(([path]) => path));
    return JSON.stringify(now) === JSON.stringify(manifest.inputs);
  } catch {
    return false; // no cache yet, or a file it was built from is gone
  }
}

/**
 * esbuild writes code as ASCII (its default charset) but keeps comments as written, and a few of them
 * (ours and the packages') hold a character past Latin-1 (a minus sign, a yen sign in iconv-lite).
 * One such character makes V8 keep the whole 2.7 MB source as a two-byte string, 2.7 MB more for the
 * run's life (measured: the source string was 5.4 MB of the heap). Escaped, the comments still read.
 */
function asciiOnly(code) {
  return code.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

async function build() {
  const esbuild = await import('esbuild');
  mkdirSync(CACHE, { recursive: true });
  // Written under names of its own, then renamed: a command starting meanwhile reads either the old
  // pair or the new one, and two builds at once each leave a whole file.
  const temp = `${BUNDLE}.${process.pid}.tmp`;
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [SOURCE],
    bundle: true,
    platform: 'node',
    target: 'node20',
    // CommonJS as the Lambda's: packages written as CommonJS need no shim. Not minified: measured, a
    // process that loaded the minified bundle held ~3 MB more.
    format: 'cjs',
    external: [...NOT_BUNDLED],
    outfile: temp,
    metafile: true,
    write: false,
    logLevel: 'silent',
  });
  // Stop esbuild's service process: the run that made the bundle goes on to drain, and would otherwise
  // keep esbuild's child and its output buffer (~6 MB) until it exits.
  await esbuild.stop();
  writeFileSync(temp, asciiOnly(result.outputFiles[0].text));
  // This file and the list of packages left out are how the bundle is made: a change to either remakes it.
  const inputs = fingerprint([...Object.keys(result.metafile.inputs), ...RECIPE]);
  writeFileSync(`${MANIFEST}.${process.pid}.tmp`, JSON.stringify({ source: SOURCE, inputs }));
  renameSync(temp, BUNDLE);
  renameSync(`${MANIFEST}.${process.pid}.tmp`, MANIFEST);
}

async function compiled() {
  if (isCurrent()) return true;
  try {
    await build();
    return true;
  } catch {
    return false; // esbuild missing or the cache not writable: tsx compiles instead
  }
}

/**
 * Starts the command again with MALLOC_SETTINGS (lib/malloc-settings.js says why) when one is not set
 * yet, ~20 ms; values the operator set win. Node before 22.15 has no process.execve and runs as
 * started. `prepared` tells the new process how to run the command, found out here: what finding it
 * out cost (stat'ing each input, esbuild when the bundle is remade) goes with this process.
 */
function startWithMallocSettings(prepared) {
  const missing = Object.keys(MALLOC_SETTINGS).some((name) => process.env[name] === undefined);
  if (!missing || typeof process.execve !== 'function') return;
  if (!usesGlibc()) return; // musl and the rest read neither
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      ...MALLOC_SETTINGS,
      ...process.env,
      [PREPARED]: prepared,
    });
  } catch {
    // execve(2) refused (a seccomp profile, say): this process goes on as it is.
  }
}

function usesGlibc() {
  const excludeNetwork = process.report.excludeNetwork;
  try {
    process.report.excludeNetwork = true; // the report's network section costs a DNS lookup
    return Boolean(process.report.getReport().header.glibcVersionRuntime);
  } catch {
    return false;
  } finally {
    process.report.excludeNetwork = excludeNetwork;
  }
}

// Set by this launcher for the process it starts itself again as; read once, and gone from the
// environment the command sees.
let how = process.env[PREPARED];
delete process.env[PREPARED];
if (how !== 'bundle' && how !== 'tsx') {
  how = (await compiled()) ? 'bundle' : 'tsx';
  startWithMallocSettings(how);
}

if (how === 'bundle') {
  createRequire(import.meta.url)(BUNDLE);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./did-sync.ts');
}
