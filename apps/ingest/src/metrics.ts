import { Counter, Gauge, Histogram, type Registry } from '@spywatcher/service';

export interface IngestMetrics {
  received: Counter<'type' | 'source'>;
  stored: Counter<'type' | 'source'>;
  duplicate: Counter<'type' | 'source'>;
  rejected: Counter<'type' | 'source' | 'code'>;
  dead: Counter<'type' | 'reason'>;
  batchSize: Histogram<'source'>;
  appendSeconds: Histogram<'source'>;
  /** Deliveries of a message after its first (a nak, a timed-out ack, a crashed instance). */
  redelivered: Counter;
  /** Times the consumer went STALL_AFTER_S without storing anything while messages waited. */
  stalls: Counter;
  /** Set by the consumer: seconds since it last stored a batch while messages wait (0: none wait). */
  setSinceProgress(seconds: number): void;
  /** Set by the consumer: returns pending and ack-pending counts of the durable consumer. */
  setLagSource(source: () => Promise<{ pending: number; ackPending: number }>): void;
}

/** Registers ingest's metrics on the service's registry. */
export function createIngestMetrics(registry: Registry): IngestMetrics {
  const registers = [registry];
  let lag: (() => Promise<{ pending: number; ackPending: number }>) | undefined;
  const cached = { pending: 0, ackPending: 0 };
  let sinceProgress = 0;
  // prom-client collects the gauges of a scrape concurrently: both wait for the same look-up,
  // so ack pending is this scrape's figure, not the one left by the previous scrape.
  let refreshing: Promise<void> | undefined;
  function refresh(): Promise<void> {
    refreshing ??= (async () => {
      if (!lag) return;
      try {
        Object.assign(cached, await lag());
      } catch {
        // NATS unreachable: keep the last known value; nats_connected says the rest
      }
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  }
  new Gauge({
    name: 'ingest_consumer_pending',
    help: 'Messages in the stream not yet delivered to the ingest consumer (lag)',
    registers,
    async collect() {
      await refresh();
      this.set(cached.pending);
    },
  });
  new Gauge({
    name: 'ingest_consumer_ack_pending',
    help: 'Messages delivered to the ingest consumer and not yet acknowledged',
    registers,
    async collect() {
      await refresh();
      this.set(cached.ackPending);
    },
  });
  new Gauge({
    name: 'ingest_consumer_seconds_since_progress',
    help: 'Seconds since the consumer last stored a batch while messages wait for it (0 when none wait)',
    registers,
    collect() {
      this.set(sinceProgress);
    },
  });
  return {
    received: new Counter({
      name: 'ingest_events_received_total',
      help: 'Events received, by type and source (nats, http)',
      labelNames: ['type', 'source'],
      registers,
    }),
    stored: new Counter({
      name: 'ingest_events_stored_total',
      help: 'Events newly stored, by type and source',
      labelNames: ['type', 'source'],
      registers,
    }),
    duplicate: new Counter({
      name: 'ingest_events_duplicate_total',
      help: 'Events whose id was already stored, by type and source',
      labelNames: ['type', 'source'],
      registers,
    }),
    rejected: new Counter({
      name: 'ingest_events_rejected_total',
      help: 'Events refused by validation, by type, source and first error code',
      labelNames: ['type', 'source', 'code'],
      registers,
    }),
    dead: new Counter({
      name: 'ingest_events_dead_total',
      help: 'Messages published to the dead subject, by type and reason (invalid, conflict, undeliverable)',
      labelNames: ['type', 'reason'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'ingest_batch_size',
      help: 'Events per append batch',
      labelNames: ['source'],
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers,
    }),
    appendSeconds: new Histogram({
      name: 'ingest_append_duration_seconds',
      help: 'Time to append one batch (partitions, transaction, commit)',
      labelNames: ['source'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    redelivered: new Counter({
      name: 'ingest_consumer_redeliveries_total',
      help: 'Messages the consumer received again after an earlier delivery (nak, ack wait expired, crashed instance)',
      registers,
    }),
    stalls: new Counter({
      name: 'ingest_consumer_stalls_total',
      help: 'Times the consumer stored nothing for 15 s while messages waited for it',
      registers,
    }),
    setLagSource(source) {
      lag = source;
    },
    setSinceProgress(seconds) {
      sinceProgress = seconds;
    },
  };
}
