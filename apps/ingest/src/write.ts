import type { NatsConnection } from '@nats-io/transport-node';
import { isEventType, type PartitionCache, type Sql } from '@spywatcher/db';
import {
  type EventFieldError,
  type NatsNames,
  type SpywatcherEvent,
  validateEvent,
} from '@spywatcher/events';
import type { IngestMetrics } from './metrics.ts';
import { publishStored } from './notify.ts';
import { isDataError, storeEvents } from './store.ts';

export type EventStatus = 'stored' | 'duplicate' | 'rejected';

export interface EventAnswer {
  index: number;
  id?: string;
  type?: string;
  status: EventStatus;
  /** For rejected events: all field errors, and the first one's reason. */
  reason?: string;
  field?: string;
  errors?: EventFieldError[];
}

export interface WriterDeps {
  sql: Sql;
  nats: NatsConnection;
  names: NatsNames;
  cache: PartitionCache;
  metrics: IngestMetrics;
}

/**
 * The HTTP half of ingest: validate every item, append the valid ones in one transaction,
 * publish `stored` notifications, and answer per item.
 */
export async function writeEvents(deps: WriterDeps, items: readonly unknown[]): Promise<EventAnswer[]> {
  const answers: EventAnswer[] = [];
  const valid: { index: number; event: SpywatcherEvent }[] = [];
  items.forEach((item, index) => {
    if (item instanceof ParseFailure) {
      answers[index] = {
        index,
        status: 'rejected',
        field: '',
        reason: item.message,
        errors: [{ field: '', code: 'invalid_type', reason: item.message }],
      };
      deps.metrics.received.inc({ type: 'unknown', source: 'http' });
      deps.metrics.rejected.inc({ type: 'unknown', source: 'http', code: 'invalid_type' });
      return;
    }
    const r = validateEvent(item);
    const type = r.ok ? r.event.type : r.type && isEventType(r.type) ? r.type : 'unknown';
    deps.metrics.received.inc({ type, source: 'http' });
    if (r.ok) {
      valid.push({ index, event: r.event });
      return;
    }
    deps.metrics.rejected.inc({ type, source: 'http', code: r.errors[0]!.code });
    answers[index] = {
      index,
      ...(r.id !== undefined ? { id: r.id } : {}),
      ...(r.type !== undefined ? { type: r.type } : {}),
      status: 'rejected',
      field: r.errors[0]!.field,
      reason: r.errors[0]!.reason,
      errors: r.errors,
    };
  });
  if (valid.length > 0) {
    deps.metrics.batchSize.observe({ source: 'http' }, valid.length);
    await storeAndAnswer(deps, valid, answers);
  }
  return answers;
}

async function storeAndAnswer(
  deps: WriterDeps,
  valid: { index: number; event: SpywatcherEvent }[],
  answers: EventAnswer[],
): Promise<void> {
  const started = performance.now();
  let outcome: Awaited<ReturnType<typeof storeEvents>>;
  try {
    outcome = await storeEvents(
      deps.sql,
      deps.cache,
      valid.map((v) => v.event),
    );
  } catch (error) {
    if (!isDataError(error)) throw error;
    // A row the schema allowed but PostgreSQL refused: store the others one by one so only
    // that one is rejected.
    if (valid.length > 1) {
      for (const v of valid) await storeAndAnswer(deps, [v], answers);
      return;
    }
    const { index, event } = valid[0]!;
    deps.metrics.rejected.inc({ type: event.type, source: 'http', code: 'invalid_value' });
    const reason = `refused by PostgreSQL: ${(error as Error).message}`;
    answers[index] = {
      index,
      id: event.id,
      type: event.type,
      status: 'rejected',
      field: '',
      reason,
      errors: [{ field: '', code: 'invalid_value', reason }],
    };
    return;
  }
  deps.metrics.appendSeconds.observe({ source: 'http' }, (performance.now() - started) / 1000);
  const fresh = new Set(outcome.storedIds);
  for (const { index, event } of valid) {
    const status: EventStatus = fresh.delete(event.id) ? 'stored' : 'duplicate';
    (status === 'stored' ? deps.metrics.stored : deps.metrics.duplicate).inc({
      type: event.type,
      source: 'http',
    });
    answers[index] = { index, id: event.id, type: event.type, status };
  }
  publishStored(deps.nats, deps.names, outcome.stored);
}

/** Stands in for an NDJSON line that is not JSON, so it gets its own answer. */
export class ParseFailure {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/** Splits an NDJSON body; blank lines are skipped, a bad line becomes a ParseFailure. */
export function parseNdjson(body: string): unknown[] {
  const out: unknown[] = [];
  let line = 0;
  for (const raw of body.split('\n')) {
    line++;
    const text = raw.trim();
    if (text === '') continue;
    try {
      out.push(JSON.parse(text));
    } catch {
      out.push(new ParseFailure(`line ${line} is not valid JSON`));
    }
  }
  return out;
}
