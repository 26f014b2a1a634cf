import { env } from '@spywatcher/service';

/** The ingest service's own variables (the common ones come from the service kit). */
export const ingestEnv = {
  NATS_STREAM: env.string('JetStream stream holding the events', 'SPYWATCHER_EVENTS'),
  NATS_SUBJECT_PREFIX: env.string('Prefix of every subject (<prefix>.events.<type>, …)', 'spywatcher'),
  NATS_DUPLICATE_WINDOW_MS: env.int('Window in which JetStream drops a repeated Nats-Msg-Id', 120_000, {
    min: 1000,
  }),
  NATS_MAX_AGE_MS: env.int(
    'How long events stay in the stream; also how far back a restore can replay events (ops)',
    7 * 24 * 3600 * 1000,
    { min: 60_000 },
  ),
  NATS_STREAM_REPLICAS: env.int(
    'Copies of the event and dead-letter streams: 1 on a single NATS server, 3 in a JetStream cluster',
    1,
    { min: 1, max: 5 },
  ),
  INGEST_PAUSED_RETRY_AFTER_S: env.int(
    'Retry-After (seconds) of the 503 that HTTP writes get while ops restores the database',
    5,
    { min: 1, max: 3600 },
  ),
  INGEST_CONSUMER: env.bool('Consume the stream (false: serve HTTP only)', true),
  INGEST_DURABLE: env.string('Name of the durable pull consumer', 'ingest'),
  INGEST_BATCH_SIZE: env.int('Events appended per transaction at most', 5000, { min: 1, max: 10_000 }),
  INGEST_BATCH_TIME_MS: env.int('Longest wait for a batch to fill before appending what is there', 50, {
    min: 1,
    max: 10_000,
  }),
  INGEST_CONCURRENCY: env.int('Batches stored at the same time, each in its own transaction', 2, {
    min: 1,
    max: 16,
  }),
  INGEST_MAX_DELIVER: env.int(
    'Deliveries of a message that keeps failing to store before it goes to the dead subject',
    20,
    { min: 1 },
  ),
  INGEST_ACK_WAIT_MS: env.int(
    "Time JetStream waits for an ack (or an in-progress mark) before redelivering: how soon a crashed instance's messages come back",
    5000,
    { min: 1000, max: 300_000 },
  ),
  INGEST_BACKOFF_MAX_MS: env.int(
    'Longest delay before a message that failed (or whose ack wait ran out) is delivered again',
    60_000,
    { min: 1000, max: 3_600_000 },
  ),
  INGEST_HTTP_MAX_EVENTS: env.int('Events accepted in one POST /v1/events (413 beyond)', 1000, {
    min: 1,
    max: 100_000,
  }),
  INGEST_HTTP_MAX_BYTES: env.int('Bytes accepted in one POST /v1/events body (413 beyond)', 5 * 1024 * 1024, {
    min: 1024,
  }),
};
