import type { NatsConnection } from '@nats-io/transport-node';
import type { PartitionCache, Sql } from '@spywatcher/db';
import {
  type EventFieldError,
  isEventType,
  type NatsNames,
  type SpywatcherEvent,
  type ValidationResult,
  validateEvent,
} from '@spywatcher/events';
import type { IngestMetrics } from './metrics.ts';
import { publishStored } from './notify.ts';
import { conflictReason, type StoredAs, storeIsolating } from './store.ts';
import { Tally } from './tally.ts';

export type EventStatus = 'stored' | 'duplicate' | 'conflict' | 'rejected';

export interface EventAnswer {
  index: number;
  id?: string;
  type?: string;
  status: EventStatus;
  /** For rejected and conflicting events: all field errors, and the first one's reason. */
  reason?: string;
  field?: string;
  errors?: EventFieldError[];
  /** For conflicts: the type and time the id was stored with. */
  stored_as?: StoredAs;
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
 * publish `stored` notifications, and answer per item. An item that cannot be checked or
 * stored is answered alone; only an unavailable database fails the whole call.
 */
export async function writeEvents(deps: WriterDeps, items: readonly unknown[]): Promise<EventAnswer[]> {
  const answers: EventAnswer[] = [];
  const valid: { index: number; event: SpywatcherEvent }[] = [];
  const received = new Tally();
  items.forEach((item, index) => {
    const r: ValidationResult =
      item instanceof ParseFailure
        ? { ok: false, errors: [{ field: '', code: 'invalid_type', reason: item.message }] }
        : validateEvent(item);
    const type = r.ok ? r.event.type : r.type && isEventType(r.type) ? r.type : 'unknown';
    received.add(type);
    if (r.ok) {
      valid.push({ index, event: r.event });
      return;
    }
    deps.metrics.rejected.inc({ type, source: 'http', code: r.errors[0]!.code });
    answers[index] = rejection(index, r.errors, r.id, r.type);
  });
  received.addTo(deps.metrics.received, 'http');
  if (valid.length > 0) {
    deps.metrics.batchSize.observe({ source: 'http' }, valid.length);
    await storeAndAnswer(deps, valid, answers);
  }
  return answers;
}

function rejection(index: number, errors: EventFieldError[], id?: string, type?: string): EventAnswer {
  return {
    index,
    ...(id !== undefined ? { id } : {}),
    ...(type !== undefined ? { type } : {}),
    status: 'rejected',
    field: errors[0]!.field,
    reason: errors[0]!.reason,
    errors,
  };
}

async function storeAndAnswer(
  deps: WriterDeps,
  valid: { index: number; event: SpywatcherEvent }[],
  answers: EventAnswer[],
): Promise<void> {
  const started = performance.now();
  const outcome = await storeIsolating(
    deps.sql,
    deps.cache,
    valid.map((v) => v.event),
  );
  deps.metrics.appendSeconds.observe({ source: 'http' }, (performance.now() - started) / 1000);
  const stored = new Tally();
  const duplicate = new Tally();
  valid.forEach(({ index, event }, k) => {
    const r = outcome.results[k]!;
    const labels = { type: event.type, source: 'http' };
    const base = { index, id: event.id, type: event.type };
    if (r.status === 'stored' || r.status === 'duplicate') {
      (r.status === 'stored' ? stored : duplicate).add(event.type);
      answers[index] = { ...base, status: r.status };
    } else if (r.status === 'conflict') {
      deps.metrics.rejected.inc({ ...labels, code: 'conflict' });
      const reason = conflictReason(event.id, r.storedAs);
      answers[index] = {
        ...base,
        status: 'conflict',
        field: '/id',
        reason,
        errors: [{ field: '/id', code: 'conflict', reason }],
        stored_as: r.storedAs,
      };
    } else {
      deps.metrics.rejected.inc({ ...labels, code: 'invalid_value' });
      answers[index] = rejection(
        index,
        [{ field: '', code: 'invalid_value', reason: r.reason }],
        event.id,
        event.type,
      );
    }
  });
  stored.addTo(deps.metrics.stored, 'http');
  duplicate.addTo(deps.metrics.duplicate, 'http');
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
