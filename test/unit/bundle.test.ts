import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

/**
 * The handler bundle as the stack builds it: validation must come from zod/mini with the English
 * messages only. Full zod (its method-chaining classes and every locale) added about 430 kB to a
 * function that cold-starts every minute.
 */
describe('Lambda bundle', () => {
  it('holds zod/mini and the English locale, not full zod', async () => {
    const out = await build({
      entryPoints: ['functions/handler.ts'],
      bundle: true,
      platform: 'node',
      target: 'node22',
      minify: true,
      write: false,
      metafile: true,
      outfile: 'out/index.js',
      logLevel: 'silent',
    });
    const output = Object.values(out.metafile.outputs)[0];
    const zod = Object.entries(output?.inputs ?? {}).filter(
      ([path, input]) => path.includes('node_modules/zod/') && input.bytesInOutput > 0,
    );
    const paths = zod.map(([path]) => path);
    expect(paths.some((p) => p.includes('zod/v4/mini/'))).toBe(true);
    expect(paths.filter((p) => p.includes('zod/v4/classic/'))).toEqual([]);
    expect(paths.filter((p) => p.includes('/locales/') && !p.endsWith('/locales/en.js'))).toEqual([]);
    const zodBytes = zod.reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
    expect(zodBytes).toBeLessThan(60_000);
  });
});
