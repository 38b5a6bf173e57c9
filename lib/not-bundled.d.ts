/** See not-bundled.js. */
export declare const NOT_BUNDLED: readonly string[];
