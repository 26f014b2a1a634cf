import { hostname } from 'node:os';
import { databaseNameOf, PartitionCache } from '@spywatcher/db';
import { startService } from '@spywatcher/service';
import { buildApp } from './app.ts';
import { ingestEnv } from './config.ts';
import type { IngestConsumer } from './consumer.ts';
import { replayStore, startIngestPipeline } from './ingest.ts';
import { createIngestMetrics } from './metrics.ts';
import { serveIngestControl, WriteGate } from './pause.ts';
import { replayStream } from './replay.ts';

await startService({
  name: 'ingest',
  defaultPort: 3001,
  env: ingestEnv,
  build: async (rt) => {
    const c = rt.config;
    const names = { prefix: c.NATS_SUBJECT_PREFIX, stream: c.NATS_STREAM };
    const cache = new PartitionCache();
    const ingestMetrics = createIngestMetrics(rt.metrics);
    // ops closes this around a restore (pause, drain, replay, resume over NATS)
    const gate = new WriteGate(c.INGEST_PAUSED_RETRY_AFTER_S);
    const control = serveIngestControl({
      nc: rt.nats,
      names,
      gate,
      database: databaseNameOf(c.DATABASE_URL),
      instance: `${hostname()}:${process.pid}`,
      logger: rt.logger,
      replay: (since) =>
        replayStream(
          {
            nc: rt.nats,
            names,
            store: replayStore({ sql: rt.sql, cache, nc: rt.nats, names }),
            batchSize: c.INGEST_BATCH_SIZE,
          },
          since,
        ),
    });
    let consumer: IngestConsumer | undefined;
    if (c.INGEST_CONSUMER) {
      consumer = await startIngestPipeline({
        sql: rt.sql,
        nc: rt.nats,
        names,
        cache,
        metrics: ingestMetrics,
        logger: rt.logger,
        duplicateWindowMs: c.NATS_DUPLICATE_WINDOW_MS,
        maxAgeMs: c.NATS_MAX_AGE_MS,
        streamReplicas: c.NATS_STREAM_REPLICAS,
        durable: c.INGEST_DURABLE,
        batchSize: c.INGEST_BATCH_SIZE,
        batchTimeMs: c.INGEST_BATCH_TIME_MS,
        maxDeliver: c.INGEST_MAX_DELIVER,
        ackWaitMs: c.INGEST_ACK_WAIT_MS,
        backoffMaxMs: c.INGEST_BACKOFF_MAX_MS,
        concurrency: c.INGEST_CONCURRENCY,
        gate,
      });
    }
    const app = await buildApp({
      ...rt,
      loggerInstance: rt.logger,
      names,
      cache,
      ingestMetrics,
      maxEvents: c.INGEST_HTTP_MAX_EVENTS,
      maxBytes: c.INGEST_HTTP_MAX_BYTES,
      gate,
    });
    // Graceful shutdown stops consuming (the batch in hand commits and acks) before NATS drains.
    return {
      app,
      stop: async () => {
        control.stop();
        await consumer?.stop();
      },
    };
  },
});
