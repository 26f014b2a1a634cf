import type { Queryable } from '@spywatcher/db';

/**
 * Time slices of message_events to walk newest first: the newest partition, then everything
 * older. A query asks one slice at a time and stops when its page (or its capped count) is full,
 * so a common word touches (and the planner plans and locks) one partition instead of all of
 * them, while a rare word costs two statements. (Finer slices, 1-2-4-rest, were tried: each
 * extra round trip cost more than the partitions it saved.) The newest slice has
 * no upper end and the oldest no lower end, so partitions created since the list was read
 * (new months, a 2016 import) are still searched.
 */
export interface Slice {
  /** inclusive lower end (ISO), null = unbounded */
  from: string | null;
  /** exclusive upper end (ISO), null = unbounded */
  to: string | null;
}

const TTL_MS = 30_000;
const cache = new WeakMap<object, { at: number; lowers: string[] }>();

/** Lower bounds of the message_events partitions, newest first (cached for 30 s per pool). */
async function partitionLowers(sql: Queryable): Promise<string[]> {
  const hit = cache.get(sql);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.lowers;
  const rows = await sql<{ lower: string }[]>`
    select to_char(b.lower at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as lower
    from pg_inherits i
    cross join lateral sw_partition_range(i.inhrelid) b
    where i.inhparent = 'message_events'::regclass
    order by b.lower desc`;
  const lowers = rows.map((r) => r.lower);
  cache.set(sql, { at: Date.now(), lowers });
  return lowers;
}

/** The slices newest first, skipping those entirely outside [since, until). */
export async function timeSlices(
  sql: Queryable,
  since: string | null,
  until: string | null,
): Promise<Slice[]> {
  const lowers = await partitionLowers(sql);
  const cuts = [1].filter((k) => k < lowers.length).map((k) => lowers[k - 1]!);
  const slices: Slice[] = [];
  let upper: string | null = null;
  for (const cut of cuts) {
    slices.push({ from: cut, to: upper });
    upper = cut;
  }
  slices.push({ from: null, to: upper });
  const ms = (iso: string) => Date.parse(iso);
  return slices.filter(
    (s) =>
      !(since !== null && s.to !== null && ms(s.to) <= ms(since)) &&
      !(until !== null && s.from !== null && ms(s.from) >= ms(until)),
  );
}
