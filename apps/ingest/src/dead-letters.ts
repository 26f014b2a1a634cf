import { DeliverPolicy, type JsMsg, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  decodeEventPayload,
  describeErrors,
  type NatsNames,
  type SpywatcherEvent,
  subjects,
  validateEvent,
} from '@spywatcher/events';
import type { DeadLetter } from './consumer.ts';

export interface DeadLetterReplayOptions {
  nc: NatsConnection;
  names: NatsNames;
  /** Only letters of this event type (`<prefix>.dead.<type>`); all types when absent. */
  type?: string;
  /** Only letters dead-lettered at or after this time; the whole dead-letter stream when absent. */
  since?: Date;
  /** Report what would be done and publish nothing. */
  dryRun: boolean;
}

/** What became, or would become, of one dead letter. */
export interface DeadLetterAction {
  seq: number;
  reason: DeadLetter['reason'] | 'unreadable';
  id?: string;
  type?: string;
  action: 'resubmit' | 'still_invalid' | 'skip_conflict';
  why?: string;
}

export interface DeadLetterReplayReport {
  dry_run: boolean;
  scanned: number;
  resubmitted: number;
  still_invalid: number;
  skipped_conflicts: number;
  actions: DeadLetterAction[];
}

/** The dead-letter stream's name for an events stream (see ensureDeadLetterStream). */
export const deadLetterStream = (names: NatsNames) => `${names.stream}_DEAD`;

/**
 * Re-submits dead-lettered events that are now valid (the cause fixed: a limit raised, the
 * database back) to `<prefix>.events.<type>`, where ingest stores them as usual (a replay of an
 * event already stored is answered `duplicate`). Letters that still fail validation are reported
 * with their errors; conflicts are skipped, since the same id can never be stored with other
 * content. The dead letters themselves are kept.
 */
export async function replayDeadLetters(o: DeadLetterReplayOptions): Promise<DeadLetterReplayReport> {
  const report: DeadLetterReplayReport = {
    dry_run: o.dryRun,
    scanned: 0,
    resubmitted: 0,
    still_invalid: 0,
    skipped_conflicts: 0,
    actions: [],
  };
  const letters = await readDeadLetters(o);
  const js = jetstream(o.nc);
  for (const m of letters) {
    report.scanned++;
    const action = judge(m);
    report.actions.push(action.summary);
    if (action.summary.action === 'still_invalid') report.still_invalid++;
    else if (action.summary.action === 'skip_conflict') report.skipped_conflicts++;
    else {
      report.resubmitted++;
      if (!o.dryRun) {
        const event = action.event!;
        // One message id per dead letter: running the replay twice within the duplicate window
        // does not publish twice (and a later repeat is answered `duplicate` by ingest).
        await js.publish(subjects(o.names).event(event.type), JSON.stringify(event), {
          msgID: `dead-replay-${deadLetterStream(o.names)}-${m.seq}`,
        });
      }
    }
  }
  return report;
}

/** The dead letters selected by type and time, up to the stream's last message as of the start. */
async function readDeadLetters(o: DeadLetterReplayOptions): Promise<JsMsg[]> {
  const stream = deadLetterStream(o.names);
  const info = await (await jetstreamManager(o.nc)).streams.info(stream);
  if (info.state.messages === 0) return [];
  const lastSeq = info.state.last_seq;
  const consumer = await jetstream(o.nc).consumers.get(stream, {
    ...(o.since
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: o.since.toISOString() }
      : { deliver_policy: DeliverPolicy.All }),
    filter_subjects: subjects(o.names).dead(o.type ?? '*'),
  });
  const out: JsMsg[] = [];
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 2000 });
    let got = 0;
    let done = false;
    for await (const m of batch) {
      got++;
      if (m.seq <= lastSeq) out.push(m);
      if (m.seq >= lastSeq || m.info.pending === 0) done = true;
    }
    if (done || got === 0) return out;
  }
}

function judge(m: JsMsg): { summary: DeadLetterAction; event?: SpywatcherEvent } {
  let letter: DeadLetter;
  try {
    letter = m.json<DeadLetter>();
  } catch {
    return {
      summary: {
        seq: m.seq,
        reason: 'unreadable',
        action: 'still_invalid',
        why: 'the dead letter is not JSON',
      },
    };
  }
  const base = { seq: m.seq, reason: letter.reason };
  const decoded = decodeEventPayload(new TextEncoder().encode(letter.payload ?? ''));
  if (!decoded.ok) return { summary: { ...base, action: 'still_invalid', why: decoded.error.reason } };
  const result = validateEvent(decoded.value);
  if (!result.ok) {
    return {
      summary: {
        ...base,
        id: result.id,
        type: result.type,
        action: 'still_invalid',
        why: describeErrors(result.errors),
      },
    };
  }
  const named = { ...base, id: result.event.id, type: result.event.type };
  if (letter.reason === 'conflict') {
    return { summary: { ...named, action: 'skip_conflict', why: letter.message } };
  }
  return { summary: { ...named, action: 'resubmit' }, event: result.event };
}
