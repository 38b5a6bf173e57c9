import type { IConstruct } from 'constructs';

/**
 * Refuses a construct's props the way AWS CDK's own constructs do: at construction, naming the construct
 * and the prop, before anything is synthesized.
 */
export class PropsError extends Error {
  constructor(scope: IConstruct, prop: string, problem: string) {
    super(`${scope.node.path}: ${prop} ${problem}`);
    this.name = 'PropsError';
  }
}

/** Throws unless `value` is an integer within [min, max]. */
export function requireInteger(
  scope: IConstruct,
  prop: string,
  value: number,
  min: number,
  max: number,
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PropsError(scope, prop, `must be an integer from ${min} to ${max}, got ${value}`);
  }
}
