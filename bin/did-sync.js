#!/usr/bin/env node
// The package.json `bin` entry: runs the TypeScript command through tsx, so an operator's
// `npx did-sync` and `npm run did-sync` execute the same source.
import { register } from 'tsx/esm/api';

// did-sync supports Node 22 and 24. On an older Node the AWS SDK prints a nine-line deprecation
// warning on every start, into the operator's output; one line of ours says it instead.
if (Number(process.versions.node.split('.')[0]) < 22) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  if (!process.env.DID_SYNC_QUIET_NODE_NOTE) {
    process.stderr.write(
      `did-sync: note: Node ${process.version} is not supported (end of life); use Node 22 or 24\n`,
    );
  }
}

register();
await import('./did-sync.ts');
