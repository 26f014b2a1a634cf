// Package boundaries, checked by `npm run boundaries` (dependency-cruiser) in CI.
// Workspace packages are resolved through their node_modules links (preserveSymlinks), so an import
// by package name is checked against the importing package's own package.json like any npm package.
const { readdirSync, readFileSync } = require('node:fs');

const appPackages = readdirSync('apps').map(
  (dir) => JSON.parse(readFileSync(`apps/${dir}/package.json`, 'utf8')).name,
);
const APP = `^(apps/|node_modules/(${appPackages.join('|')})/)`;
// Code that never runs in production: tests, the test kit, examples, tools and the root test config.
const DEV_ONLY = '(\\.test\\.ts$|/test/|/examples/|^libs/testing/|^tools/|^vitest\\.config\\.ts$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-app-to-app',
      comment: 'An app never imports another app: shared code goes to a lib.',
      severity: 'error',
      from: { path: '^apps/([^/]+)/' },
      to: { path: APP, pathNot: '^apps/$1/' },
    },
    {
      name: 'no-lib-to-app',
      comment: 'A lib never imports an app.',
      severity: 'error',
      from: { path: '^libs/' },
      to: { path: APP },
    },
    {
      name: 'events-stands-alone',
      comment: 'libs/events is the wire contract: it imports no other workspace package.',
      severity: 'error',
      from: { path: '^libs/events/src/' },
      to: { path: '^(apps/|libs/|node_modules/@spywatcher/)', pathNot: '^libs/events/' },
    },
    {
      name: 'through-package-exports',
      comment:
        'Code reaches another workspace package by its name and exports, never by a relative path into it.',
      severity: 'error',
      from: { path: '^(apps|libs)/([^/]+)/' },
      to: { path: '^(apps|libs)/', pathNot: '^$1/$2/' },
    },
    {
      name: 'tools-through-package-exports',
      comment: 'tools reach apps and libs by package name and exports, never by a relative path.',
      severity: 'error',
      from: { path: '^tools/' },
      to: { path: '^(apps|libs)/' },
    },
    {
      name: 'no-unlisted',
      comment: 'Every package declares what it imports in its own package.json (workspace packages too).',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'test-tools-are-dev-dependencies',
      comment: 'Test tools are devDependencies, so a production install leaves them out.',
      severity: 'error',
      from: {},
      to: {
        path: '^node_modules/(vitest|testcontainers|@testcontainers/[^/]+|@spywatcher/testing)/',
        dependencyTypes: ['npm'],
      },
    },
    {
      name: 'no-dev-dependency-in-production',
      comment: 'Production code only uses production dependencies.',
      severity: 'error',
      from: { pathNot: DEV_ONLY },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      comment: 'No import cycles (a cycle of type-only imports is harmless and allowed).',
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    preserveSymlinks: true,
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    combinedDependencies: false,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default', 'types'],
    },
  },
};
