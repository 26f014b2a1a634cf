import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  decodeEventPayload,
  type NatsNames,
  type ReplayReport,
  type SpywatcherEvent,
  subjects,
  validateEvent,
} from '@spywatcher/events';

export interface ReplayOptions {
  nc: NatsConnection;
  names: NatsNames;
  /** Ingest's own store path: how many of the batch were new, already stored, or neither. */
  store: (events: SpywatcherEvent[]) => Promise<{ stored: number; present: number; other: number }>;
  batchSize: number;
}

/**
 * Replays the events stream from `since` into the database through the normal store path
 * (idempotent by event id), with an ordered consumer (DeliverPolicy.ByStartTime) that stops at
 * the stream's last message as of the start; later messages reach the database through the
 * durable consumer as usual.
 */
export async function replayStream(o: ReplayOptions, since: Date): Promise<ReplayReport> {
  const jsm = await jetstreamManager(o.nc);
  const info = await jsm.streams.info(o.names.stream);
  const firstAt = info.state.messages > 0 ? new Date(info.state.first_ts) : null;
  const report: ReplayReport = {
    replayed: 0,
    already_present: 0,
    // a stream that still holds its first message (seq 1) has lost nothing to retention
    beyond_retention: firstAt !== null && info.state.first_seq > 1 && firstAt.getTime() > since.getTime(),
    invalid: 0,
    since: since.toISOString(),
    stream_first_at: firstAt?.toISOString() ?? null,
    messages: 0,
  };
  const lastSeq = info.state.last_seq;
  if (info.state.messages === 0) return report;
  const consumer = await jetstream(o.nc).consumers.get(o.names.stream, {
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: since.toISOString(),
    // one subject as a string: the server (2.9) knows filter_subject, not filter_subjects
    filter_subjects: subjects(o.names).allEvents,
  });
  for (;;) {
    const batch: JsMsg[] = [];
    let done = false;
    const fetched = await consumer.fetch({ max_messages: o.batchSize, expires: 2000 });
    for await (const m of fetched) {
      if (m.seq > lastSeq) {
        done = true;
        break;
      }
      batch.push(m);
      if (m.seq >= lastSeq || m.info.pending === 0) done = true;
    }
    if (batch.length > 0) await storeBatch(o, batch, report);
    if (done || batch.length === 0) break;
  }
  return report;
}

async function storeBatch(o: ReplayOptions, batch: JsMsg[], report: ReplayReport): Promise<void> {
  const events: SpywatcherEvent[] = [];
  for (const m of batch) {
    report.messages++;
    const decoded = decodeEventPayload(m.data);
    const result = decoded.ok ? validateEvent(decoded.value) : null;
    if (result?.ok) events.push(result.event);
    else report.invalid++;
  }
  if (events.length === 0) return;
  const { stored, present, other } = await o.store(events);
  report.replayed += stored;
  report.already_present += present;
  report.invalid += other;
}
