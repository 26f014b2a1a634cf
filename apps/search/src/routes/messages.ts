import type { Sql } from '@spywatcher/db';
import { type Auth, errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { isMessageRef, messageContext } from '../search/index.ts';
import { SEARCH_SCOPE } from './search.ts';

const Message = Type.Object({
  id: Type.String({ format: 'uuid', description: 'event id' }),
  messageId: Type.Union([Type.String(), Type.Null()], {
    description: "Discord's message id (null for legacy rows)",
  }),
  occurredAt: Type.String({ examples: ['2024-05-17T10:21:07.123456Z'] }),
  userId: Type.String(),
  username: Type.String(),
  channelId: Type.String(),
  channelName: Type.String(),
  guildId: Type.String(),
  content: Type.String(),
  attachmentCount: Type.Integer(),
  deleted: Type.Boolean({ description: 'deleted later' }),
});

export function messageRoutes(app: ServiceInstance, deps: { sql: Sql; auth: Auth }): void {
  app.get(
    '/v1/messages/:id/context',
    {
      config: { scope: SEARCH_SCOPE },
      schema: {
        tags: ['search'],
        summary: 'A message with its neighbours in the channel',
        description: `The message and up to \`before\` older and \`after\` newer messages of the same channel, each list
oldest first: what a moderator opens after a search hit. Deleted messages are included and flagged.
Needs the \`${SEARCH_SCOPE}\` scope.`,
        params: Type.Object({
          id: Type.String({
            maxLength: 64,
            description: "the event id (UUID, as in search results) or Discord's message id",
            examples: ['0190f3a2-8c4e-7d21-9b7a-3f5e2c1d0a9b', '1240912345678901234'],
          }),
        }),
        querystring: Type.Object({
          before: Type.Integer({
            minimum: 0,
            maximum: 100,
            default: 5,
            description: 'older messages to include',
            examples: [10],
          }),
          after: Type.Integer({
            minimum: 0,
            maximum: 100,
            default: 5,
            description: 'newer messages to include',
            examples: [10],
          }),
        }),
        response: {
          200: Type.Object({ message: Message, before: Type.Array(Message), after: Type.Array(Message) }),
          ...errorResponses(400, 401, 403, 404, 500, 503),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!isMessageRef(id)) {
        throw httpErrors.badRequest('id must be an event id (UUID) or a Discord message id (digits)');
      }
      const context = await messageContext(deps.sql, id, request.query.before, request.query.after);
      if (!context) throw httpErrors.notFound(`no message with id ${id}`);
      return context;
    },
  );
}
