#!/usr/bin/env node
// The package.json `bin` entry: runs the TypeScript command through tsx, so an operator's
// `npx did-sync` and `npm run did-sync` execute the same source.
import { register } from 'tsx/esm/api';

register();
await import('./did-sync.ts');
