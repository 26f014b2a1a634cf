import { isUtf8 } from 'node:buffer';
import { EVENT_TYPES, eventTable, isEventType, rowToEvent, SpywatcherEventSchema } from '@spywatcher/events';
import { errorResponses, httpErrors, type ServiceInstance, Type } from '@spywatcher/service';
import { PausedError, type WriteGate } from '../pause.ts';
import { ParseFailure, parseNdjson, type WriterDeps, writeEvents } from '../write.ts';

export interface EventsRouteOptions extends WriterDeps {
  auth: import('@spywatcher/service').Auth;
  maxEvents: number;
  maxBytes: number;
  /** Closed while ops restores the database: writes answer 503 with Retry-After. */
  gate?: WriteGate;
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
  status: Type.Union(
    [Type.Literal('stored'), Type.Literal('duplicate'), Type.Literal('conflict'), Type.Literal('rejected')],
    {
      description:
        '`stored`: new, now in the log. `duplicate`: the same event (id and content) was already stored; nothing written, do not resend. `conflict`: the id is already stored with other content (another type, time or data); nothing written, send the event with a new id. `rejected`: the event is invalid (see field, reason, errors); nothing written.',
    },
  ),
  field: Type.Optional(Type.String({ description: 'First refused field (rejected and conflict only)' })),
  reason: Type.Optional(Type.String({ description: 'Why it was refused (rejected and conflict only)' })),
  errors: Type.Optional(Type.Array(FieldError)),
  stored_as: Type.Optional(
    Type.Object(
      { type: Type.String(), occurred_at: Type.String({ format: 'date-time' }) },
      { description: 'Conflict only: the type and time the id is stored with' },
    ),
  ),
});

const WriteResponse = Type.Object({
  stored: Type.Integer(),
  duplicate: Type.Integer(),
  conflict: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(Answer),
});

/** A body that is not UTF-8 is refused whole: decoding it would store U+FFFD the sender never sent. */
function utf8Body(body: Buffer): string {
  if (!isUtf8(body)) {
    throw httpErrors.badRequest('the request body is not valid UTF-8; encode events as UTF-8 JSON');
  }
  return body.toString('utf8');
}

const StoredEvent = Type.Object({
  event: Type.Unknown({ description: 'The event as published (envelope + data)' }),
  recorded_at: Type.String({ format: 'date-time' }),
  position: Type.String({ description: 'Position in the log (bigint as a string)' }),
});

export async function eventRoutes(app: ServiceInstance, o: EventsRouteOptions): Promise<void> {
  // NDJSON arrives as bytes and is split per line so one bad line is answered, not fatal.
  app.addContentTypeParser(
    ['application/x-ndjson', 'application/ndjson', 'application/jsonl'],
    { parseAs: 'buffer', bodyLimit: o.maxBytes },
    (_req, body, done) => {
      try {
        done(null, parseNdjson(utf8Body(body as Buffer)));
      } catch (error) {
        done(error as Error, undefined);
      }
    },
  );
  // JSON too is checked as bytes (the default parser decodes invalid UTF-8 to U+FFFD).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: o.maxBytes },
    (_req, body, done) => {
      let text: string;
      try {
        text = utf8Body(body as Buffer);
      } catch (error) {
        done(error as Error, undefined);
        return;
      }
      if (text.trim() === '') {
        done(httpErrors.badRequest('the body is empty; send a JSON array of events'), undefined);
        return;
      }
      try {
        done(null, JSON.parse(text));
      } catch (error) {
        done(httpErrors.badRequest(`the body is not valid JSON: ${(error as Error).message}`), undefined);
      }
    },
  );

  app.post(
    '/v1/events',
    {
      bodyLimit: o.maxBytes,
      config: { scope: 'events:write' },
      // Every item is validated by the handler so each gets its own answer; the schema is
      // here for the documentation.
      validatorCompiler: () => () => true,
      schema: {
        tags: ['events'],
        summary: 'Store a batch of events (JSON array or NDJSON)',
        description: `Needs scope \`events:write\`. Body: a JSON array of events (\`application/json\`) or one event per line (\`application/x-ndjson\`), at most ${o.maxEvents} events and ${o.maxBytes} bytes (413 beyond). Valid events are stored in one transaction; each event is answered \`stored\`, \`duplicate\` (the same event was already stored), \`conflict\` (its id is already stored with other content: another type, time or data) or \`rejected\` with the field and reason. One bad event never fails the others: the batch answers 200 with a result per event. Ids are compared in lower case. 400 when the body is not valid UTF-8 or not JSON; 503 when PostgreSQL is unavailable, and 503 with \`Retry-After\` while ops restores the database (nothing of the batch was stored; send it again).`,
        body: Type.Array(SpywatcherEventSchema, { maxItems: o.maxEvents }),
        response: { 200: WriteResponse, ...errorResponses(400, 401, 403, 413, 415, 503) },
      },
    },
    async (request, reply) => {
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
        results = o.gate ? await o.gate.run(() => writeEvents(o, items)) : await writeEvents(o, items);
      } catch (error) {
        if (error instanceof PausedError) {
          reply.header('retry-after', String(error.retryAfterS));
          throw httpErrors.unavailable(`${error.message}; nothing was stored`);
        }
        request.log.warn({ err: error }, 'storing events failed');
        throw httpErrors.unavailable(
          'the event log is unavailable right now; nothing was stored, retry later',
        );
      }
      const count = (s: string) => results.filter((r) => r.status === s).length;
      return {
        stored: count('stored'),
        duplicate: count('duplicate'),
        conflict: count('conflict'),
        rejected: count('rejected'),
        results,
      };
    },
  );

  app.get(
    '/v1/events/:type/:id',
    {
      config: { scope: 'events:read' },
      schema: {
        tags: ['events'],
        summary: 'One stored event',
        description:
          'Needs scope `events:read` (events hold message text, so reading is not public). An id names at most one event across all types and times; 404 when it is not stored as an event of this type.',
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
      // The registry names the one row of an id (type and time): at most one answer, found
      // in its own partition.
      const [row] = await o.sql.unsafe<Record<string, unknown>[]>(
        `select t.*, t.position::text as position
           from event_ids e join ${eventTable(type)} t on t.id = e.id and t.occurred_at = e.occurred_at
          where e.id = $1 and e.type = $2`,
        [id.toLowerCase(), type],
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
