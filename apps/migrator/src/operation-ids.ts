/** The method names clients generated from migrator's OpenAPI document get (see libs/client). */
export const OPERATION_IDS = {
  'GET /v1/migrations': 'listMigrations',
  'POST /v1/imports': 'startImport',
  'GET /v1/imports/{id}': 'getImport',
};
