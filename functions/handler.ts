import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createRunMetrics } from './lambda/run-metrics';
import { type RuntimeDeps, SyncRuntime } from './lambda/sync-runtime';
import { type Env, flushLogLines, SyncLogger } from './sync';

/**
 * The Lambda entry point: a thin adapter that validates the event and hands it to the same engine the
 * `did-sync` command runs. The runtime is built on the first invocation and kept while the container is
 * warm (settings errors then fail that invocation with one line naming the setting).
 */
export function createHandler(env: Env = process.env, deps: Partial<RuntimeDeps> = {}) {
  const logLevel = (env.POWERTOOLS_LOG_LEVEL ?? env.LOG_LEVEL ?? 'INFO').toUpperCase() as 'INFO';
  const logger =
    deps.logger ?? new SyncLogger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'did-sync', logLevel });
  const metrics = deps.metrics ?? createRunMetrics(env, logger);
  let runtime: SyncRuntime | undefined;
  const handle = async (event: unknown, context: Context): Promise<unknown> => {
    runtime ??= new SyncRuntime(env, { ...deps, logger, metrics });
    return runtime.handle(event, context);
  };
  // logMetrics prints a sync run's metrics as one EMF blob when the invocation ends, failed runs included.
  // Used first, so its steps run last: every log line of the invocation is written before Lambda may
  // freeze the process (SyncLogger writes routine lines a few at a time).
  return middy(handle)
    .use({ after: flushLogLines, onError: flushLogLines })
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
}

export const handler = createHandler();
