/** The method names clients generated from search's OpenAPI document get (see libs/client). */
export const OPERATION_IDS = {
  'GET /v1/search/messages': 'searchMessages',
  'GET /v1/messages/{id}/context': 'getMessageContext',
  'GET /v1/users/{userId}/timeline': 'getUserTimeline',
  'GET /v1/analytics/ghosts': 'getGhosts',
  'GET /v1/analytics/lurkers': 'getLurkers',
  'GET /v1/analytics/heatmap': 'getHeatmap',
  'GET /v1/analytics/channel-diversity': 'getChannelDiversity',
  'GET /v1/analytics/multi-client': 'getMultiClientUsers',
  'GET /v1/analytics/reaction-stats': 'getReactionStats',
  'GET /v1/analytics/role-drift': 'getRoleDrift',
  'GET /v1/analytics/behavior-shifts': 'getBehaviorShifts',
  'GET /v1/analytics/client-drift': 'getClientDrift',
  'GET /v1/analytics/suspicion': 'getSuspicionScores',
  'GET /v1/projections': 'listProjections',
  'POST /v1/projections/{name}/rebuild': 'rebuildProjection',
  'GET /v1/projections/{name}/rebuilds/{id}': 'getProjectionRebuild',
};
