import { Stack } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { LOG_QUERIES, type LogQueryName } from './log-queries';

export interface SavedQueriesProps {
  /** The function log groups the queries run on (one, or one per sync). */
  readonly logGroups: readonly logs.ILogGroup[];
}

/**
 * Every query of lib/log-queries.ts saved in CloudWatch Logs Insights, in a folder named after the stack,
 * with the function's log groups preselected: operators open them instead of retyping them.
 */
export class SavedQueries extends Construct {
  readonly definitions: Record<LogQueryName, logs.CfnQueryDefinition>;

  constructor(scope: Construct, id: string, props: SavedQueriesProps) {
    super(scope, id);
    const folder = Stack.of(this).stackName;
    this.definitions = Object.fromEntries(
      (Object.keys(LOG_QUERIES) as LogQueryName[]).map((name) => [
        name,
        new logs.CfnQueryDefinition(this, name, {
          name: `${folder}/${name}`,
          queryString: LOG_QUERIES[name],
          logGroupNames: props.logGroups.map((g) => g.logGroupName),
        }),
      ]),
    ) as Record<LogQueryName, logs.CfnQueryDefinition>;
  }
}
