import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PartitionCache, Sql } from '@spywatcher/db';
import { ensureDeadLetterStream, ensureEventStream, type NatsNames } from '@spywatcher/events';
import type { FastifyBaseLogger } from 'fastify';
import { type ConsumerOptions, type IngestConsumer, startConsumer } from './consumer.ts';
import type { IngestMetrics } from './metrics.ts';

export interface IngestPipelineOptions {
  sql: Sql;
  nc: NatsConnection;
  names: NatsNames;
  cache: PartitionCache;
  metrics: IngestMetrics;
  logger: FastifyBaseLogger;
  duplicateWindowMs: number;
  maxAgeMs: number;
  durable: string;
  batchSize: number;
  batchTimeMs: number;
  maxDeliver: number;
  ackWaitMs: number;
  concurrency?: number;
  afterCommit?: ConsumerOptions['afterCommit'];
}

/** Creates or updates the streams, then starts the durable consumer. */
export async function startIngestPipeline(o: IngestPipelineOptions): Promise<IngestConsumer> {
  const jsm = await jetstreamManager(o.nc);
  await ensureEventStream(jsm, o.names, { duplicateWindowMs: o.duplicateWindowMs, maxAgeMs: o.maxAgeMs });
  await ensureDeadLetterStream(jsm, o.names);
  return startConsumer({ ...o });
}
