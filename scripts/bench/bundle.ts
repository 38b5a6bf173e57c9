import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { NOT_BUNDLED } from '../../lib/sync-function';
import { CHILD_NODE } from './child';
import { intEnv, median, progress } from './common';

/**
 * Section G: the Lambda bundle as the stack builds it (lib/sync-function.ts: NodejsFunction's esbuild
 * with bundle, platform node, target node24, CommonJS, minify, the same externals), its make-up by
 * package from esbuild's metafile, and how long `require()` of it takes in a fresh process.
 */

const ROOT = join(import.meta.dirname, '..', '..');
const LOADS = intEnv('BENCH_BUNDLE_LOADS', 5, 1, 50);

export interface BundleFigures {
  bytes: number;
  byPackage: { name: string; bytes: number }[];
  packages: number;
  externals: string[];
  buildSeconds: number;
  /** require() of the bundle in a fresh `node -e`, each run. */
  loadMs: number[];
  loadMsMedian: number | null;
  node: string;
}

/** `node_modules/@smithy/foo/dist/x.js` → `@smithy/foo`; own sources → `own code (functions/)`. */
function packageOf(path: string): string {
  const at = path.lastIndexOf('node_modules/');
  if (at < 0) return path.startsWith('functions/') ? 'own code (functions/)' : path;
  const [first, second] = path.slice(at + 'node_modules/'.length).split('/');
  return first?.startsWith('@') ? `${first}/${second}` : (first ?? path);
}

export async function benchBundle(): Promise<BundleFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'did-sync-bench-bundle-'));
  try {
    const outfile = join(dir, 'index.js');
    progress('G: bundling functions/handler.ts as the stack does');
    const started = performance.now();
    const result = await build({
      absWorkingDir: ROOT,
      entryPoints: ['functions/handler.ts'],
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      minify: true,
      external: [...NOT_BUNDLED],
      metafile: true,
      outfile,
      logLevel: 'silent',
    });
    const buildSeconds = (performance.now() - started) / 1000;
    const output = Object.values(result.metafile.outputs)[0];
    const sizes = new Map<string, number>();
    for (const [path, input] of Object.entries(output?.inputs ?? {})) {
      const name = packageOf(path);
      sizes.set(name, (sizes.get(name) ?? 0) + input.bytesInOutput);
    }
    const byPackage = [...sizes].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes);
    progress(`G: loading the bundle ${LOADS} times in a fresh process`);
    const script =
      'const t = process.hrtime.bigint(); require(process.argv[1]);' +
      ' process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));';
    const loadMs: number[] = [];
    for (let i = 0; i < LOADS; i++) {
      const text = execFileSync(CHILD_NODE, ['-e', script, outfile], {
        encoding: 'utf8',
        env: {
          ...process.env,
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          AWS_REGION: 'us-east-1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      loadMs.push(Number(text.trim()));
    }
    const node = execFileSync(CHILD_NODE, ['-v'], { encoding: 'utf8' }).trim();
    return {
      bytes: statSync(outfile).size,
      byPackage,
      packages: byPackage.length,
      externals: [...NOT_BUNDLED],
      buildSeconds,
      loadMs,
      loadMsMedian: median(loadMs),
      node,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
