/** The method names clients generated from ingest's OpenAPI document get (see libs/client). */
export const OPERATION_IDS = {
  'POST /v1/events': 'storeEvents',
  'GET /v1/events/{type}/{id}': 'getEvent',
};
