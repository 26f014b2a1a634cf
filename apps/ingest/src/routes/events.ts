import { EVENT_TYPES, eventTable, isEventType } from '@spywatcher/db';
import { rowToEvent, SpywatcherEventSchema } from '@spywatcher/events';
import { errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { ParseFailure, parseNdjson, type WriterDeps, writeEvents } from '../write.ts';

export interface EventsRouteOptions extends WriterDeps {
  auth: import('@spywatcher/service').Auth;
  maxEvents: number;
  maxBytes: number;
}

const FieldError = Type.Object({
  field: Type.String({ description: 'JSON pointer into the event', examples: ['/data/content'] }),
  code: Type.String({ examples: ['too_long'] }),
  reason: Type.String({ examples: ['must not have more than 4000 characters'] }),
});

const Answer = Type.Object({
  index: Type.Integer({ description: 'Position of the event in the request' }),
  id: Type.Optional(Type.String()),
  type: Type.Optional(Type.String()),
  status: Type.Union([Type.Literal('stored'), Type.Literal('duplicate'), Type.Literal('rejected')]),
  field: Type.Optional(Type.String({ description: 'First refused field (rejected only)' })),
  reason: Type.Optional(Type.String({ description: 'Why it was refused (rejected only)' })),
  errors: Type.Optional(Type.Array(FieldError)),
});

const WriteResponse = Type.Object({
  stored: Type.Integer(),
  duplicate: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(Answer),
});

const StoredEvent = Type.Object({
  event: Type.Unknown({ description: 'The event as published (envelope + data)' }),
  recorded_at: Type.String({ format: 'date-time' }),
  position: Type.String({ description: 'Position in the log (bigint as a string)' }),
});

export async function eventRoutes(app: ServiceInstance, o: EventsRouteOptions): Promise<void> {
  // NDJSON arrives as text and is split per line so one bad line is answered, not fatal.
  app.addContentTypeParser(
    ['application/x-ndjson', 'application/ndjson', 'application/jsonl'],
    { parseAs: 'string', bodyLimit: o.maxBytes },
    (_req, body, done) => done(null, parseNdjson(body as string)),
  );

  app.post(
    '/v1/events',
    {
      bodyLimit: o.maxBytes,
      preHandler: o.auth.require('events:write'),
      // Every item is validated by the handler so each gets its own answer; the schema is
      // here for the documentation.
      validatorCompiler: () => () => true,
      schema: {
        tags: ['events'],
        summary: 'Store a batch of events (JSON array or NDJSON)',
        description: `Needs scope \`events:write\`. Body: a JSON array of events (\`application/json\`) or one event per line (\`application/x-ndjson\`), at most ${o.maxEvents} events and ${o.maxBytes} bytes (413 beyond). Valid events are stored in one transaction; each event is answered \`stored\`, \`duplicate\` (its id was already stored) or \`rejected\` with the field and reason. Answers 503 when PostgreSQL is unavailable (nothing of the batch was stored; send it again).`,
        security: [{ bearerAuth: [] }],
        body: Type.Array(SpywatcherEventSchema, { maxItems: o.maxEvents }),
        response: { 200: WriteResponse, ...errorResponses(400, 401, 403, 413, 415, 503) },
      },
    },
    async (request) => {
      const body = request.body as unknown;
      const items = Array.isArray(body) ? body : [body];
      if (items.length === 0) throw httpErrors.badRequest('the batch is empty; send at least one event');
      if (items.length > o.maxEvents) {
        throw httpErrors.payloadTooLarge(
          `the batch has ${items.length} events; at most ${o.maxEvents} are accepted per request`,
        );
      }
      let results: Awaited<ReturnType<typeof writeEvents>>;
      try {
        results = await writeEvents(o, items);
      } catch (error) {
        request.log.warn({ err: error }, 'storing events failed');
        throw httpErrors.unavailable(
          'the event log is unavailable right now; nothing was stored, retry later',
        );
      }
      const count = (s: string) => results.filter((r) => r.status === s).length;
      return { stored: count('stored'), duplicate: count('duplicate'), rejected: count('rejected'), results };
    },
  );

  app.get(
    '/v1/events/:type/:id',
    {
      preHandler: o.auth.require('events:read'),
      schema: {
        tags: ['events'],
        summary: 'One stored event',
        description: 'Needs scope `events:read` (events hold message text, so reading is not public).',
        security: [{ bearerAuth: [] }],
        params: Type.Object({
          type: Type.Union(
            EVENT_TYPES.map((t) => Type.Literal(t)),
            { description: 'Event type' },
          ),
          id: Type.String({ format: 'uuid', description: 'Event id' }),
        }),
        response: { 200: StoredEvent, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const { type, id } = request.params as { type: string; id: string };
      if (!isEventType(type)) throw httpErrors.notFound(`no event type ${type}`);
      const [row] = await o.sql.unsafe<Record<string, unknown>[]>(
        `select *, position::text as position from ${eventTable(type)} where id = $1 limit 1`,
        [id],
      );
      if (!row) throw httpErrors.notFound(`no ${type} event with id ${id}`);
      return {
        event: rowToEvent(type, row),
        recorded_at: (row.recorded_at as Date).toISOString(),
        position: String(row.position),
      };
    },
  );
}

export { ParseFailure };
