import {
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { DEFAULT_NATS_NAMES, type NatsNames, subjects } from './subjects.ts';

export interface EventStreamOptions {
  /** Window in which a repeated `Nats-Msg-Id` is dropped by the server (default 2 minutes). */
  duplicateWindowMs?: number;
  /** How long events stay in the stream after being published (default 7 days). */
  maxAgeMs?: number;
  /** Upper bound on the stream's size in bytes (default unlimited, -1). */
  maxBytes?: number;
  /** Copies of the stream kept by a JetStream cluster: 1 on a single server, 3 in a cluster (default 1). */
  replicas?: number;
}

const nanos = (ms: number) => ms * 1_000_000;
const STREAM_NOT_FOUND = 10059;
const STREAM_NAME_IN_USE = 10058;
const REPLICAS_NEED_CLUSTER = 10074;
const INSUFFICIENT_RESOURCES = 10023;

/** An error naming the replica count and what the server answered, so the setting can be fixed. */
export class StreamReplicasError extends Error {
  constructor(stream: string, replicas: number, cause: JetStreamApiError) {
    const why =
      cause.code === REPLICAS_NEED_CLUSTER
        ? 'the NATS server is not part of a JetStream cluster (R1 is the only choice on a single server)'
        : cause.code === INSUFFICIENT_RESOURCES
          ? 'the cluster has fewer JetStream servers up than replicas'
          : cause.message;
    super(`cannot keep stream ${stream} with ${replicas} replica(s): ${why}`, { cause });
    this.name = 'StreamReplicasError';
  }
}

async function upsertStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }) {
  try {
    return await addOrUpdate(jsm, config);
  } catch (error) {
    const replicas = config.num_replicas ?? 1;
    if (error instanceof JetStreamApiError && (replicas > 1 || error.code === REPLICAS_NEED_CLUSTER))
      throw new StreamReplicasError(config.name, replicas, error);
    throw error;
  }
}

/** Creates the stream, or updates it in place (the server moves it to a new replica count). */
async function addOrUpdate(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }) {
  try {
    await jsm.streams.info(config.name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) {
      try {
        return await jsm.streams.add(config);
      } catch (addError) {
        // Another instance created it between our info and add: fall through to update.
        if (!(addError instanceof JetStreamApiError && addError.code === STREAM_NAME_IN_USE)) throw addError;
      }
    } else {
      throw error;
    }
  }
  const { name, ...rest } = config;
  return jsm.streams.update(name, rest);
}

/**
 * Creates or updates the events stream (`names.stream`, default SPYWATCHER_EVENTS) on
 * `<prefix>.events.>`: file storage, limits retention, a duplicate window in which the
 * server drops a repeated Nats-Msg-Id, and a maximum age.
 */
export async function ensureEventStream(
  jsm: JetStreamManager,
  names: NatsNames = DEFAULT_NATS_NAMES,
  options: EventStreamOptions = {},
): Promise<StreamInfo> {
  const duplicateWindowMs = options.duplicateWindowMs ?? 120_000;
  const maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3600 * 1000;
  return upsertStream(jsm, {
    name: names.stream,
    subjects: [subjects(names).allEvents],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // The server requires the duplicate window to be no longer than max_age.
    duplicate_window: nanos(Math.min(duplicateWindowMs, maxAgeMs)),
    max_age: nanos(maxAgeMs),
    max_bytes: options.maxBytes ?? -1,
    num_replicas: options.replicas ?? 1,
    description: 'SpyWatcher activity events published by bots, consumed by ingest',
  });
}

/** Name of the stream that keeps dead letters (`<stream>_DEAD`). */
export const deadLetterStreamName = (names: NatsNames = DEFAULT_NATS_NAMES) => `${names.stream}_DEAD`;

/**
 * Creates or updates the stream that keeps `<prefix>.dead.>` so an event refused by ingest is
 * never lost: it can be inspected and republished after a fix.
 */
export async function ensureDeadLetterStream(
  jsm: JetStreamManager,
  names: NatsNames = DEFAULT_NATS_NAMES,
  options: { maxAgeMs?: number; replicas?: number } = {},
): Promise<StreamInfo> {
  return upsertStream(jsm, {
    name: deadLetterStreamName(names),
    subjects: [`${names.prefix}.dead.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: nanos(options.maxAgeMs ?? 30 * 24 * 3600 * 1000),
    num_replicas: options.replicas ?? 1,
    description: 'SpyWatcher events that ingest could not store, with the reason',
  });
}
