import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PartitionCache, Sql } from '@spywatcher/db';
import {
  ensureDeadLetterStream,
  ensureEventStream,
  type NatsNames,
  type SpywatcherEvent,
} from '@spywatcher/events';
import { type ConsumerOptions, type IngestConsumer, startConsumer } from './consumer.ts';
import { publishStored } from './notify.ts';
import { storeIsolating } from './store.ts';

/** The consumer's options plus the stream settings applied before it starts. */
export interface IngestPipelineOptions extends ConsumerOptions {
  duplicateWindowMs: number;
  maxAgeMs: number;
  /** Copies of both streams in a JetStream cluster (1 on a single server). */
  streamReplicas?: number;
}

/** Creates or updates the streams, then starts the durable consumer. */
export async function startIngestPipeline(o: IngestPipelineOptions): Promise<IngestConsumer> {
  const jsm = await jetstreamManager(o.nc);
  const replicas = o.streamReplicas ?? 1;
  await ensureEventStream(jsm, o.names, {
    duplicateWindowMs: o.duplicateWindowMs,
    maxAgeMs: o.maxAgeMs,
    replicas,
  });
  await ensureDeadLetterStream(jsm, o.names, { replicas });
  return startConsumer(o);
}

/**
 * The store path a replay after a restore uses: the same append as every batch (idempotent by
 * event id, a refused row isolated), with the usual `stored` notifications; counted as new,
 * already present, and neither (a conflict or a row PostgreSQL refuses, dead-lettered when the
 * event was first consumed).
 */
export function replayStore(deps: { sql: Sql; cache: PartitionCache; nc: NatsConnection; names: NatsNames }) {
  return async (events: SpywatcherEvent[]): Promise<{ stored: number; present: number; other: number }> => {
    // A replay re-submits what the stream holds: most of it is stored already.
    const outcome = await storeIsolating(deps.sql, deps.cache, events, { mayBeKnown: true });
    publishStored(deps.nc, deps.names, outcome.stored);
    const count = (status: string) => outcome.results.filter((r) => r.status === status).length;
    const stored = count('stored');
    const present = count('duplicate');
    return { stored, present, other: events.length - stored - present };
  };
}
