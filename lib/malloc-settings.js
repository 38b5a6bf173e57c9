/**
 * How glibc's malloc is set for a process that runs the sync: the did-sync command (bin/did-sync.js
 * starts itself again with these) and the function (lib/sync-function.ts puts them in its
 * environment). glibc reads them only when a process starts. Measured on 20,000-call drains (README,
 * benchmark F), CPU per call unchanged by either:
 * - one arena for the process instead of one per thread that allocates: V8's compiler and GC threads
 *   and libuv's pool each kept megabytes of their own (Node 24's peak 108-114 MB -> 100-111);
 * - blocks of 16 kB and more mapped on their own and handed back when freed: the compilers' working
 *   memory (V8 zones, 10 to 22 MB at once while a drain warms up, heaptrack) otherwise stays in the
 *   heap's middle for the run's life, under the rows and requests that come after (10 rounds on
 *   Node 24: median 104 MB, up to 111, -> median 101, up to 103). A fixed threshold also stops glibc
 *   raising it after a large free.
 * Plain JavaScript: the launcher reads it before anything can compile TypeScript.
 */
export const MALLOC_SETTINGS = Object.freeze({ MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '16384' });
