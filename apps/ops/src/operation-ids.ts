/** The method names clients generated from ops' OpenAPI document get (see libs/client). */
export const OPERATION_IDS = {
  'POST /v1/backups': 'startBackup',
  'GET /v1/backups': 'listBackups',
  'GET /v1/backups/{id}': 'getBackup',
  'DELETE /v1/backups/{id}': 'deleteBackup',
  'POST /v1/backups/{id}/verify': 'verifyBackup',
  'POST /v1/restores': 'startRestore',
  'POST /v1/maintenance/{kind}': 'startMaintenance',
  'GET /v1/jobs': 'listJobs',
  'GET /v1/jobs/{id}': 'getJob',
  'POST /v1/jobs/{id}/cancel': 'cancelJob',
  'GET /v1/database/health': 'getDatabaseHealth',
};
