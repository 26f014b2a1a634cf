import type { NatsConnection } from '@nats-io/transport-node';
import {
  type NatsNames,
  type PauseReply,
  type PauseRequest,
  type ReplayReply,
  type ReplayReport,
  type ReplayRequest,
  subjects,
} from '@spywatcher/events';

export type { ReplayReport };

/** Writers of one database held still: renewed until released. */
export interface HeldWriters {
  /** Ingest instances that answered "paused" (their in-flight batches drained). */
  instances: number;
  replay(since: Date, signal: AbortSignal): Promise<ReplayReport>;
  release(): Promise<void>;
}

export interface WriterFence {
  hold(database: string, signal: AbortSignal): Promise<HeldWriters>;
}

export interface NatsFenceOptions {
  /** Pause lease: ingest resumes by itself when ops stops renewing it (ops crashed). */
  leaseMs: number;
  /** Longest wait for ingest instances to answer a pause. */
  answerWaitMs: number;
  /** Longest a replay may take. */
  replayTimeoutMs: number;
  holder: string;
}

/**
 * The ops half of the writer fence over NATS (`<prefix>.ingest.control.*`): `pause` is sent to
 * every ingest instance and each one answers after its in-flight writes have drained; the
 * lease is renewed every third of its length; `replay` goes to one instance (queue group);
 * `resume` ends it. See apps/ingest/src/pause.ts for the other half.
 */
export function natsFence(nc: NatsConnection, names: NatsNames, o: NatsFenceOptions): WriterFence {
  const s = subjects(names);
  return {
    async hold(database, signal) {
      const body = JSON.stringify({ database, holder: o.holder, leaseMs: o.leaseMs } satisfies PauseRequest);
      let instances = 0;
      const errors: string[] = [];
      try {
        const replies = await nc.requestMany(s.ingestControl('pause'), body, {
          maxWait: o.answerWaitMs,
          // instances drain in parallel; once answers stop coming for a second, all have answered
          strategy: 'stall',
          stall: 1000,
        });
        for await (const m of replies) {
          if (signal.aborted) break;
          try {
            const r = m.json<PauseReply>();
            if (r.ok && r.paused) instances++;
            else if (r.error) errors.push(`${r.instance ?? 'ingest'}: ${r.error.message}`);
          } catch {
            // not an answer of ours (an empty status message): ignored
          }
        }
      } catch {
        // no responders: no ingest instance is listening
      }
      const renew = setInterval(
        () => {
          if (!nc.isClosed())
            nc.publish(s.ingestControl('renew'), JSON.stringify({ holder: o.holder, leaseMs: o.leaseMs }));
        },
        Math.max(100, Math.floor(o.leaseMs / 3)),
      );
      renew.unref();
      const release = async () => {
        clearInterval(renew);
        if (nc.isClosed()) return;
        nc.publish(s.ingestControl('resume'), JSON.stringify({ holder: o.holder }));
        await nc.flush().catch(() => {});
      };
      if (errors.length > 0) {
        await release();
        throw new Error(`ingest could not pause: ${errors.join('; ')}`);
      }
      return {
        instances,
        release,
        async replay(since, replaySignal) {
          const msg = await nc.request(
            s.ingestControl('replay'),
            JSON.stringify({
              database,
              since: since.toISOString(),
              holder: o.holder,
            } satisfies ReplayRequest),
            { timeout: o.replayTimeoutMs },
          );
          if (replaySignal.aborted) throw new Error('cancelled during the replay');
          const r = msg.json<ReplayReply>();
          if (!r.ok || !r.report)
            throw new Error(`ingest could not replay: ${r.error?.message ?? 'no report'}`);
          return r.report;
        },
      };
    },
  };
}
