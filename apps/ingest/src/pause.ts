import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  type NatsNames,
  type PauseReply,
  type ReplayReply,
  type ReplayReport,
  subjects,
} from '@spywatcher/events';
import type { FastifyBaseLogger } from 'fastify';

/** Thrown to an HTTP write that arrives while the writers are paused. */
export class PausedError extends Error {
  readonly retryAfterS: number;
  constructor(retryAfterS: number) {
    super('ingest is paused while the database is being restored; retry shortly');
    this.name = 'PausedError';
    this.retryAfterS = retryAfterS;
  }
}

/**
 * The writers' gate. Every write to the database (an HTTP batch, a consumer batch) runs inside
 * it; `hold` closes it and resolves once the writes in flight have finished, so from then on
 * nothing of this process commits until every holder has released it or its lease ran out (a
 * crashed ops must not leave ingest paused forever).
 */
export class WriteGate {
  private readonly holders = new Map<string, NodeJS.Timeout>();
  private inflight = 0;
  private drained: (() => void)[] = [];
  private opened: (() => void)[] = [];
  readonly retryAfterS: number;

  constructor(retryAfterS = 5) {
    this.retryAfterS = retryAfterS;
  }

  get paused(): boolean {
    return this.holders.size > 0;
  }

  holds(holder: string): boolean {
    return this.holders.has(holder);
  }

  /** An HTTP write: refused at once while paused. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.paused) throw new PausedError(this.retryAfterS);
    return this.inside(work);
  }

  /** A consumer batch: waits while paused (its messages stay unacked in JetStream meanwhile). */
  async whenOpen<T>(work: () => Promise<T>): Promise<T> {
    while (this.paused) await new Promise<void>((resolve) => this.opened.push(resolve));
    return this.inside(work);
  }

  /** Closes the gate for `holder` for `leaseMs`; resolves when nothing is in flight any more. */
  async hold(holder: string, leaseMs: number): Promise<void> {
    this.renew(holder, leaseMs);
    if (this.inflight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
  }

  renew(holder: string, leaseMs: number): void {
    clearTimeout(this.holders.get(holder));
    const timer = setTimeout(() => this.release(holder), leaseMs);
    timer.unref();
    this.holders.set(holder, timer);
  }

  release(holder: string): void {
    clearTimeout(this.holders.get(holder));
    this.holders.delete(holder);
    if (this.paused) return;
    const waiting = this.opened;
    this.opened = [];
    for (const resolve of waiting) resolve();
  }

  private async inside<T>(work: () => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await work();
    } finally {
      this.inflight--;
      if (this.inflight === 0) {
        const waiting = this.drained;
        this.drained = [];
        for (const resolve of waiting) resolve();
      }
    }
  }
}

export interface IngestControlOptions {
  nc: NatsConnection;
  names: NatsNames;
  gate: WriteGate;
  /** The database this instance writes to: pauses and replays for another one are not ours. */
  database: string;
  instance: string;
  replay: (since: Date) => Promise<ReplayReport>;
  logger: FastifyBaseLogger;
}

/**
 * The ingest half of the writer fence (`<prefix>.ingest.control.*`, sent by ops around a
 * restore): `pause` {database, holder, leaseMs} answers after in-flight writes drained;
 * `renew` {holder, leaseMs}; `resume` {holder}; `replay` {database, since} (queue group: one
 * instance replays) answers with the replay report.
 */
export function serveIngestControl(o: IngestControlOptions): { stop: () => void } {
  const s = subjects(o.names);
  const parse = (m: Msg): Record<string, unknown> | null => {
    try {
      const body = m.json<Record<string, unknown>>();
      return typeof body === 'object' && body !== null ? body : null;
    } catch {
      return null;
    }
  };
  const leaseOf = (body: Record<string, unknown>) =>
    typeof body.leaseMs === 'number' && body.leaseMs > 0 ? Math.min(body.leaseMs, 3_600_000) : 30_000;
  const subs: Subscription[] = [
    o.nc.subscribe(s.ingestControl('pause'), {
      callback: (_e, m) => {
        const body = parse(m);
        if (!body || body.database !== o.database || typeof body.holder !== 'string') return;
        const started = performance.now();
        void o.gate.hold(body.holder, leaseOf(body)).then(() => {
          o.logger.warn({ holder: body.holder }, 'ingest paused: writes drained, waiting for resume');
          const reply: PauseReply = {
            ok: true,
            paused: true,
            instance: o.instance,
            drainedMs: Math.round(performance.now() - started),
          };
          m.respond(JSON.stringify(reply));
        });
      },
    }),
    o.nc.subscribe(s.ingestControl('renew'), {
      callback: (_e, m) => {
        const body = parse(m);
        // only a pause this instance holds is renewed; a stray renew never pauses anything
        if (body && typeof body.holder === 'string' && o.gate.holds(body.holder))
          o.gate.renew(body.holder, leaseOf(body));
      },
    }),
    o.nc.subscribe(s.ingestControl('resume'), {
      callback: (_e, m) => {
        const body = parse(m);
        if (!body || typeof body.holder !== 'string') return;
        o.gate.release(body.holder);
        if (!o.gate.paused) o.logger.warn({ holder: body.holder }, 'ingest resumed');
      },
    }),
    o.nc.subscribe(s.ingestControl('replay'), {
      queue: 'spywatcher-ingest-replay',
      callback: (_e, m) => {
        const body = parse(m);
        const since = typeof body?.since === 'string' ? new Date(body.since) : null;
        if (!body || body.database !== o.database || !since || Number.isNaN(since.getTime())) {
          const reply: ReplayReply = {
            ok: false,
            error: { message: `replay needs {database: "${o.database}", since: <ISO time>}` },
          };
          if (m.reply) m.respond(JSON.stringify(reply));
          return;
        }
        o.replay(since).then(
          (report) => {
            o.logger.warn({ report }, 'replayed the stream after a restore');
            m.respond(JSON.stringify({ ok: true, report } satisfies ReplayReply));
          },
          (error: Error) => {
            o.logger.error({ err: error }, 'replay failed');
            m.respond(JSON.stringify({ ok: false, error: { message: error.message } } satisfies ReplayReply));
          },
        );
      },
    }),
  ];
  return {
    stop: () => {
      for (const sub of subs) sub.unsubscribe();
    },
  };
}
