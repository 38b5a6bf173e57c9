/** See malloc-settings.js. */
export declare const MALLOC_SETTINGS: Readonly<{ MALLOC_ARENA_MAX: string; MALLOC_MMAP_THRESHOLD_: string }>;
