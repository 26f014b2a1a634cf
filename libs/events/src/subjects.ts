import type { EventType } from './event-types.ts';

/**
 * NATS names. Everything hangs off a prefix (default `spywatcher`) and a stream name
 * (default `SPYWATCHER_EVENTS`) so tests and parallel environments can use their own.
 */
export interface NatsNames {
  prefix: string;
  stream: string;
}

export const DEFAULT_NATS_NAMES: NatsNames = { prefix: 'spywatcher', stream: 'SPYWATCHER_EVENTS' };

export const subjects = (names: NatsNames = DEFAULT_NATS_NAMES) => ({
  /** Where publishers send events: `<prefix>.events.<type>`. */
  event: (type: EventType) => `${names.prefix}.events.${type}`,
  allEvents: `${names.prefix}.events.>`,
  /** Events that could not be stored, with the reason. */
  dead: (type: string) => `${names.prefix}.dead.${type}`,
  /** Published by ingest after a commit. */
  stored: (type: EventType) => `${names.prefix}.stored.${type}`,
  allStored: `${names.prefix}.stored.>`,
  /** Requests to the ops service. */
  ops: (action: string) => `${names.prefix}.ops.${action}`,
  allOps: `${names.prefix}.ops.>`,
  /** Progress of an ops job. */
  opsJob: (id: string) => `${names.prefix}.ops.jobs.${id}`,
  /** Control of the ingest writers (pause, renew, resume, replay), used by ops around a restore. */
  ingestControl: (action: 'pause' | 'renew' | 'resume' | 'replay') =>
    `${names.prefix}.ingest.control.${action}`,
});
