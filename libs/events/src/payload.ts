import { isUtf8 } from 'node:buffer';
import type { EventFieldError } from './validate.ts';

export type DecodedPayload = { ok: true; value: unknown } | { ok: false; error: EventFieldError };

/**
 * Bytes of one published event to a JSON value. Invalid UTF-8 is refused rather than decoded
 * to U+FFFD, which would store text the publisher never sent. Never throws (JSON.parse does
 * not recurse, so depth is left to validateEvent).
 */
export function decodeEventPayload(bytes: Uint8Array): DecodedPayload {
  if (!isUtf8(bytes)) {
    return { ok: false, error: { field: '', code: 'invalid_type', reason: 'payload is not valid UTF-8' } };
  }
  try {
    return {
      ok: true,
      value: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')),
    };
  } catch {
    return { ok: false, error: { field: '', code: 'invalid_type', reason: 'payload is not valid JSON' } };
  }
}
