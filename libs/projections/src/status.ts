import type { Queryable } from '@spywatcher/db';
import { type EventType, eventTable } from '@spywatcher/events';
import { Gauge, type Registry } from '@spywatcher/service';
import type { Projection } from './projection.ts';
import { projectionTables } from './statements.ts';

/** Counting events behind stops here, so a status call on a huge backlog stays cheap. */
export const BEHIND_CAP = 1_000_000;

export interface TypeStatus {
  type: EventType;
  tx: string;
  position: string;
  eventsApplied: number;
  updatedAt: string | null;
  eventsBehind: number;
  secondsBehind: number;
}

export interface ProjectionStatus {
  name: string;
  description: string;
  tables: string[];
  eventsBehind: number;
  secondsBehind: number;
  checkpoints: TypeStatus[];
}

/**
 * Where each projection stands: its checkpoint per event type, how many stored events lie past
 * it (capped at BEHIND_CAP) and how old the oldest of them is (now − its recorded_at; 0 when
 * caught up).
 */
export async function projectionStatus(
  sql: Queryable,
  projections: readonly Projection[],
): Promise<ProjectionStatus[]> {
  const out: ProjectionStatus[] = [];
  for (const p of projections) {
    const checkpoints: TypeStatus[] = [];
    for (const type of p.types) {
      const [cp] = await sql<{ tx: string; position: string; events_applied: string; updated_at: Date }[]>`
        select tx::text as tx, position::text as position, events_applied::text, updated_at
        from projection_checkpoints where projection = ${p.name} and event_type = ${type}
      `;
      const tx = cp?.tx ?? '0';
      const position = cp?.position ?? '0';
      const [behind] = await sql.unsafe<{ n: number; seconds: number | null }[]>(
        `select count(*)::int as n, extract(epoch from now() - min(recorded_at))::float8 as seconds
         from (select recorded_at from ${eventTable(type)}
               where (tx, position) > ($1::xid8, $2::bigint) limit ${BEHIND_CAP}) b`,
        [tx, position],
      );
      checkpoints.push({
        type,
        tx,
        position,
        eventsApplied: Number(cp?.events_applied ?? 0),
        updatedAt: cp ? cp.updated_at.toISOString() : null,
        eventsBehind: behind?.n ?? 0,
        secondsBehind: Math.max(0, Math.round((behind?.seconds ?? 0) * 1000) / 1000),
      });
    }
    out.push({
      name: p.name,
      description: p.description,
      tables: projectionTables(p),
      eventsBehind: checkpoints.reduce((a, c) => a + c.eventsBehind, 0),
      secondsBehind: Math.max(0, ...checkpoints.map((c) => c.secondsBehind)),
      checkpoints,
    });
  }
  return out;
}

/** Gauges computed from projectionStatus when Prometheus scrapes /metrics. */
export function registerProjectionMetrics(
  registry: Registry,
  sql: Queryable,
  projections: readonly Projection[],
): void {
  // One status query per scrape, shared by the three gauges.
  let pending: Promise<ProjectionStatus[]> | undefined;
  const load = () => {
    pending ??= projectionStatus(sql, projections).finally(() => {
      setTimeout(() => {
        pending = undefined;
      }, 100).unref();
    });
    return pending;
  };
  new Gauge({
    name: 'projection_events_behind',
    help: `Stored events not yet folded into the projection (capped at ${BEHIND_CAP} per event type)`,
    labelNames: ['projection'],
    registers: [registry],
    async collect() {
      for (const s of await load()) this.set({ projection: s.name }, s.eventsBehind);
    },
  });
  new Gauge({
    name: 'projection_seconds_behind',
    help: 'Age of the oldest stored event the projection has not applied yet (0 when caught up)',
    labelNames: ['projection'],
    registers: [registry],
    async collect() {
      for (const s of await load()) this.set({ projection: s.name }, s.secondsBehind);
    },
  });
  new Gauge({
    name: 'projection_checkpoint_position',
    help: 'Position of the last event applied, by projection and event type',
    labelNames: ['projection', 'type'],
    registers: [registry],
    async collect() {
      for (const s of await load()) {
        for (const c of s.checkpoints) this.set({ projection: s.name, type: c.type }, Number(c.position));
      }
    },
  });
}
