import { EVENT_TYPES, type EventType, isEventType } from '@spywatcher/db';
import { Compile } from 'typebox/compile';
import type { TLocalizedValidationError } from 'typebox/error';
import { EVENT_SCHEMAS, METADATA_MAX_BYTES, type SpywatcherEvent } from './schemas.ts';

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
  | 'too_large';

export type ValidationResult =
  | { ok: true; event: SpywatcherEvent }
  | { ok: false; type?: string; id?: string; errors: EventFieldError[] };

/** Discord launched in 2015; nothing SpyWatcher records can be older. */
export const EARLIEST_OCCURRED_AT = Date.UTC(2015, 0, 1);
/** Clock skew allowed between a publisher and us. */
export const MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000;

// PostgreSQL text and jsonb cannot hold U+0000, so such an event could never be stored.
const NUL_REASON = 'must not contain the NUL character (U+0000)';

function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(hasNul);
  if (value && typeof value === 'object') {
    return Object.entries(value).some(([k, x]) => k.includes('\u0000') || hasNul(x));
  }
  return false;
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
 * what is wrong.
 */
export function validateEvent(value: unknown, now: number = Date.now()): ValidationResult {
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
    } else if (hasNul(v.metadata)) {
      errors.push({ field: '/metadata', code: 'invalid_value', reason: NUL_REASON });
    }
  }
  if (errors.length === 0) {
    for (const [key, value] of Object.entries(v.data as Record<string, unknown>)) {
      if (hasNul(value)) {
        errors.push({ field: `/data/${key}`, code: 'invalid_value', reason: NUL_REASON });
      }
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
  return { ok: true, event: value as SpywatcherEvent };
}

/** One line summary of field errors, for logs and dead letters. */
export function describeErrors(errors: readonly EventFieldError[]): string {
  return errors.map((e) => `${e.field || '(event)'}: ${e.reason}`).join('; ');
}
