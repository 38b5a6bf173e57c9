import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { NOT_BUNDLED } from '../../lib/sync-function';
import { intEnv, median, progress } from './common';
import { benchNodes } from './nodes';

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
  /** require() of the bundle in a fresh `node -e`, each run, per node. */
  loads: { node: string; loadMs: number[]; loadMsMedian: number | null; floorMs: number[] }[];
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
    // The floor: what a run cannot do without, the DynamoDB client and mysql2, bundled the same way.
    const floorEntry = join(dir, 'floor.ts');
    writeFileSync(floorEntry, "import '@aws-sdk/client-dynamodb';\nimport 'mysql2';\n");
    const floorFile = join(dir, 'floor.js');
    await build({
      absWorkingDir: ROOT,
      entryPoints: [floorEntry],
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      minify: true,
      external: [...NOT_BUNDLED],
      outfile: floorFile,
      nodePaths: [join(ROOT, 'node_modules')],
      logLevel: 'silent',
    });
    const script =
      'const t = process.hrtime.bigint(); require(process.argv[1]);' +
      ' process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));';
    const load = (node: string, file: string) =>
      Number(
        execFileSync(node, ['-e', script, file], {
          encoding: 'utf8',
          env: {
            ...process.env,
            AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
            AWS_REGION: 'us-east-1',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        }).trim(),
      );
    const loads: BundleFigures['loads'] = [];
    for (const node of benchNodes()) {
      progress(`G: loading the bundle ${LOADS} times in a fresh node ${node.version}`);
      // Interleaved with the floor's loads: a busy moment of the machine touches both.
      const loadMs: number[] = [];
      const floorMs: number[] = [];
      for (let i = 0; i < LOADS; i++) {
        loadMs.push(load(node.path, outfile));
        floorMs.push(load(node.path, floorFile));
      }
      loads.push({ node: node.version, loadMs, loadMsMedian: median(loadMs), floorMs });
    }
    return {
      bytes: statSync(outfile).size,
      byPackage,
      packages: byPackage.length,
      externals: [...NOT_BUNDLED],
      buildSeconds,
      loads,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
