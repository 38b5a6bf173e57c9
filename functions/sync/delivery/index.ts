/**
 * delivery/: the DID Optimizer API: one POST classified, retries and backoff, 429 pauses and adaptive
 * concurrency, the outage breaker, the health probe. Imports only calls/ and the shared top-level
 * modules (log, run-control); never source/, state/, run/ or admin/.
 */
export * from './api-client';
export * from './api-health';
export * from './call-delivery';
export * from './outage-breaker';
export * from './retry-policy';
export * from './throttle';
