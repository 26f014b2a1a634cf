/**
 * Every scope of the four services (the table in libs/service/README.md): the development token
 * holds them all. tools/security checks the list against the services' OpenAPI documents.
 */
export const SCOPES = [
  'events:write',
  'events:read',
  'search:read',
  'analytics:read',
  'projections:read',
  'projections:write',
  'migrations:read',
  'imports:write',
  'ops:read',
  'ops:write',
  'ops:restore',
  'metrics:read',
];
