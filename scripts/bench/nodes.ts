import { execFileSync } from 'node:child_process';
import { CHILD_NODE } from './child';
import { progress } from './common';

/**
 * The node binaries B and G run on, side by side: the child node (BENCH_NODE, else this one) and Node 24,
 * Lambda's `nodejs24.x`. BENCH_NODE_24: its binary; unset, `npx -y node@24` fetches it from the npm
 * registry (the `node` package ships the binary); `off` skips it.
 */
export interface BenchNode {
  readonly path: string;
  readonly version: string;
}

const versionOf = (path: string) => execFileSync(path, ['-v'], { encoding: 'utf8' }).trim();

function node24(): string | undefined {
  const given = process.env.BENCH_NODE_24?.trim();
  if (given === 'off') return undefined;
  if (given) return given;
  try {
    progress('finding a Node 24 binary (npx -y node@24)');
    return execFileSync('npx', ['-y', 'node@24', '-p', 'process.execPath'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    progress('no Node 24 binary: set BENCH_NODE_24 to one; B and G run on the child node only');
    return undefined;
  }
}

let nodes: BenchNode[] | undefined;

export function benchNodes(): BenchNode[] {
  if (nodes) return nodes;
  const first = { path: CHILD_NODE, version: versionOf(CHILD_NODE) };
  nodes = [first];
  const other = node24();
  if (other) {
    const version = versionOf(other);
    if (version.split('.')[0] !== first.version.split('.')[0]) nodes.push({ path: other, version });
  }
  return nodes;
}
