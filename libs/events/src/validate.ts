import { Compile } from 'typebox/compile';
import type { TLocalizedValidationError } from 'typebox/error';
import { EVENT_TYPES, type EventType, isEventType } from './event-types.ts';
import { inspectJson, type JsonProblem } from './json-inspect.ts';
import { EVENT_SCHEMAS, METADATA_MAX_BYTES, METADATA_MAX_DEPTH, type SpywatcherEvent } from './schemas.ts';

/** Why one field of an event was refused. `field` is a JSON pointer into the event. */
export interface EventFieldError {
  field: string;
  /** Stable machine-readable code (see libs/events/README.md, "Event shape"). */
  code: EventErrorCode;
  /** A sentence a person can act on. */
  reason: string;
}

export type EventErrorCode =
  | 'not_object'
  | 'required'
  | 'unknown_type'
  | 'unknown_field'
  | 'invalid_type'
  | 'invalid_format'
  | 'invalid_value'
  | 'too_long'
  | 'too_many'
  | 'out_of_range'
  | 'too_large'
  | 'too_deep'
  | 'unprocessable'
  /** The id is already stored with other content (answered by ingest, not by validateEvent). */
  | 'conflict';

export type ValidationResult =
  | { ok: true; event: SpywatcherEvent }
  | { ok: false; type?: string; id?: string; errors: EventFieldError[] };

/** Discord launched in 2015; nothing SpyWatcher records can be older. */
export const EARLIEST_OCCURRED_AT = Date.UTC(2015, 0, 1);
/** Clock skew allowed between a publisher and us. */
export const MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000;

// PostgreSQL text and jsonb cannot hold U+0000, so such an event could never be stored.
const NUL_REASON = 'must not contain the NUL character (U+0000)';
/** Values in one event at most: more cannot fit the metadata and data limits anyway. */
const MAX_EVENT_NODES = METADATA_MAX_BYTES + 2000;

/** The field error for a problem found by the structural walk of the whole event. */
function structureError(p: JsonProblem): EventFieldError {
  const top = `/${p.path.split('/')[1] ?? ''}`;
  switch (p.kind) {
    case 'too_deep':
      return {
        field: top,
        code: 'too_deep',
        reason: `${top.slice(1)} nests deeper than ${METADATA_MAX_DEPTH} levels of objects and arrays`,
      };
    case 'too_many_nodes':
      return {
        field: top,
        code: 'too_large',
        reason: `the event holds more than ${MAX_EVENT_NODES} values; metadata is at most ${METADATA_MAX_BYTES} bytes`,
      };
    case 'nul':
      return { field: p.path, code: 'invalid_value', reason: p.inKey ? `key ${NUL_REASON}` : NUL_REASON };
    case 'lone_surrogate':
      return {
        field: p.path,
        code: 'invalid_value',
        reason: `${p.inKey ? 'key ' : ''}must be well-formed Unicode: lone UTF-16 surrogate at character ${p.at}`,
      };
  }
}

const validators = Object.fromEntries(EVENT_TYPES.map((t) => [t, Compile(EVENT_SCHEMAS[t])])) as {
  [T in EventType]: ReturnType<typeof Compile>;
};

const CODES: Record<string, EventErrorCode> = {
  required: 'required',
  type: 'invalid_type',
  format: 'invalid_format',
  pattern: 'invalid_format',
  const: 'invalid_value',
  enum: 'invalid_value',
  anyOf: 'invalid_value',
  uniqueItems: 'invalid_value',
  maxLength: 'too_long',
  minLength: 'too_long',
  maxItems: 'too_many',
  maxProperties: 'too_many',
  minimum: 'out_of_range',
  maximum: 'out_of_range',
  exclusiveMinimum: 'out_of_range',
  exclusiveMaximum: 'out_of_range',
  additionalProperties: 'unknown_field',
};

function toFieldErrors(errors: TLocalizedValidationError[]): EventFieldError[] {
  const out: EventFieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'boolean') continue; // reported again, better, as additionalProperties
    const push = (field: string, code: EventErrorCode, reason: string) => {
      const key = `${field}\u0000${code}`;
      if (seen.has(key)) return;
      seen.add(key);
      out.push({ field, code, reason });
    };
    if (e.keyword === 'required') {
      for (const name of (e.params as { requiredProperties?: string[] }).requiredProperties ?? []) {
        push(`${e.instancePath}/${name}`, 'required', `${name} is required`);
      }
      if (!(e.params as { requiredProperties?: string[] }).requiredProperties) {
        push(e.instancePath, 'required', e.message);
      }
      continue;
    }
    if (e.keyword === 'additionalProperties') {
      for (const name of (e.params as { additionalProperties: string[] }).additionalProperties) {
        push(`${e.instancePath}/${name}`, 'unknown_field', `${name} is not a field of this event`);
      }
      continue;
    }
    if (e.keyword === 'minLength' && e.instancePath !== '') {
      push(e.instancePath, 'required', `${e.instancePath.split('/').pop()} must not be empty`);
      continue;
    }
    push(e.instancePath, CODES[e.keyword] ?? 'invalid_value', e.message);
  }
  return out;
}

function utf8Bytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

/**
 * Validates one decoded event. Never throws: an invalid event yields every field error
 * (JSON pointer, code, reason) so HTTP callers and the dead-letter subject can say exactly
 * what is wrong, and an unexpected failure while checking becomes this event's own rejection.
 * A valid event comes back with its id in lower case (the canonical form of a UUID).
 */
export function validateEvent(value: unknown, now: number = Date.now()): ValidationResult {
  try {
    return check(value, now);
  } catch (error) {
    const v = (value ?? {}) as Record<string, unknown>;
    return {
      ok: false,
      ...(typeof v.id === 'string' ? { id: v.id } : {}),
      ...(typeof v.type === 'string' ? { type: v.type } : {}),
      errors: [
        {
          field: '',
          code: 'unprocessable',
          reason: `the event could not be checked: ${(error as Error)?.message ?? String(error)}`,
        },
      ],
    };
  }
}

function check(value: unknown, now: number): ValidationResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return {
      ok: false,
      errors: [{ field: '', code: 'not_object', reason: 'an event must be a JSON object' }],
    };
  }
  const v = value as Record<string, unknown>;
  const id = typeof v.id === 'string' ? v.id : undefined;
  if (v.type === undefined) {
    return { ok: false, id, errors: [{ field: '/type', code: 'required', reason: 'type is required' }] };
  }
  if (typeof v.type !== 'string' || !isEventType(v.type)) {
    return {
      ok: false,
      id,
      type: typeof v.type === 'string' ? v.type : undefined,
      errors: [
        {
          field: '/type',
          code: 'unknown_type',
          reason: `type must be one of ${EVENT_TYPES.join(', ')}`,
        },
      ],
    };
  }
  const type = v.type;
  // Depth, size and storable strings first, without recursion: the schema validator and
  // JSON.stringify below recurse, and a value thousands of levels deep would overflow them.
  const problem = inspectJson(value, { maxDepth: METADATA_MAX_DEPTH + 1, maxNodes: MAX_EVENT_NODES });
  if (problem) return { ok: false, id, type, errors: [structureError(problem)] };
  const validator = validators[type];
  const errors = validator.Check(value) ? [] : toFieldErrors(validator.Errors(value));
  if (v.metadata !== undefined && errors.every((e) => !e.field.startsWith('/metadata'))) {
    const bytes = utf8Bytes(v.metadata);
    if (bytes > METADATA_MAX_BYTES) {
      errors.push({
        field: '/metadata',
        code: 'too_large',
        reason: `metadata is ${bytes} bytes of JSON; at most ${METADATA_MAX_BYTES} are allowed`,
      });
    }
  }
  if (typeof v.occurred_at === 'string' && errors.every((e) => e.field !== '/occurred_at')) {
    const at = Date.parse(v.occurred_at);
    if (Number.isNaN(at)) {
      errors.push({
        field: '/occurred_at',
        code: 'invalid_format',
        reason: 'occurred_at is not a valid date-time',
      });
    } else if (at < EARLIEST_OCCURRED_AT || at > now + MAX_FUTURE_SKEW_MS) {
      errors.push({
        field: '/occurred_at',
        code: 'out_of_range',
        reason: 'occurred_at must be after 2015-01-01 and at most one day in the future',
      });
    }
  }
  if (errors.length > 0) return { ok: false, id, type, errors };
  const event = value as SpywatcherEvent;
  // One id, one spelling: an upper-case UUID names the same event as its lower-case form.
  return { ok: true, event: id === id!.toLowerCase() ? event : { ...event, id: id!.toLowerCase() } };
}

/** One line summary of field errors, for logs and dead letters. */
export function describeErrors(errors: readonly EventFieldError[]): string {
  return errors.map((e) => `${e.field || '(event)'}: ${e.reason}`).join('; ');
}
