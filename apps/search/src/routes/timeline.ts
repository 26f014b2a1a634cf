import type { Sql } from '@spywatcher/db';
import { EVENT_TYPES, type EventType } from '@spywatcher/events';
import { type Auth, errorResponses, HttpError, type ServiceInstance, Type } from '@spywatcher/service';
import { SearchInputError, userTimeline } from '../search/index.ts';
import { SEARCH_SCOPE } from './search.ts';

export function timelineRoutes(app: ServiceInstance, deps: { sql: Sql; auth: Auth }): void {
  app.get(
    '/v1/users/:userId/timeline',
    {
      config: { scope: SEARCH_SCOPE },
      schema: {
        tags: ['search'],
        summary: "A user's activity, every event type merged newest first",
        description: `Presence, typing, messages, joins, deleted messages, reactions (as observer or actor) and role
changes of one user, newest first, with a keyset cursor (no page limit). Needs the \`${SEARCH_SCOPE}\` scope.`,
        params: Type.Object({
          userId: Type.String({
            pattern: '^[A-Za-z0-9_-]{1,64}$',
            description: 'Discord user id',
            examples: ['123456789012345678'],
          }),
        }),
        querystring: Type.Object({
          types: Type.Optional(
            Type.String({
              pattern: `^(${EVENT_TYPES.join('|')})(,(${EVENT_TYPES.join('|')}))*$`,
              description: `comma-separated event types (default: all of ${EVENT_TYPES.join(', ')})`,
              examples: ['message,deleted_message', 'presence'],
            }),
          ),
          guild: Type.Optional(
            Type.String({
              pattern: '^[0-9]{1,25}$',
              description: 'only events of this guild',
              examples: ['112233445566778899'],
            }),
          ),
          limit: Type.Integer({ minimum: 1, maximum: 200, default: 50, examples: [100] }),
          cursor: Type.Optional(
            Type.String({ maxLength: 1024, description: 'nextCursor of the previous page (opaque)' }),
          ),
        }),
        response: {
          200: Type.Object({
            entries: Type.Array(
              Type.Object({
                type: Type.String({ description: `one of ${EVENT_TYPES.join(', ')}`, examples: ['message'] }),
                id: Type.String({ format: 'uuid' }),
                occurredAt: Type.String({ examples: ['2024-05-17T10:21:07.123456Z'] }),
                guildId: Type.Union([Type.String(), Type.Null()]),
                data: Type.Record(Type.String(), Type.Unknown(), {
                  description: 'the columns of that event type (see the event log schema)',
                }),
              }),
            ),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses(400, 401, 403, 500, 503),
        },
      },
    },
    async (request) => {
      const { types, guild, limit, cursor } = request.query;
      try {
        return await userTimeline(deps.sql, request.params.userId, {
          types: types ? (types.split(',') as EventType[]) : undefined,
          guildId: guild,
          limit,
          cursor,
        });
      } catch (error) {
        if (error instanceof SearchInputError) {
          throw new HttpError(400, 'INVALID_CURSOR', error.message, { parameter: 'cursor' });
        }
        throw error;
      }
    },
  );
}
