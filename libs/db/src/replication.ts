import type { Queryable } from './client.ts';

/** What a standby reports about itself: is it replaying, is WAL arriving, how far behind. */
export interface StandbyStatus {
  /** True while the server is in recovery (a standby); false on a primary or a promoted standby. */
  standby: boolean;
  /** True when the WAL receiver streams from a primary (null on a primary). */
  receiving: boolean | null;
  /**
   * Time since the last replayed commit while WAL received is not yet replayed; 0 when replay has
   * caught up with what arrived (an idle primary is not lag). Null on a primary.
   */
  lagMs: number | null;
  /** WAL received and not yet replayed, in bytes (null on a primary). */
  replayPendingBytes: number | null;
}

/** A standby as its primary sees it (pg_stat_replication). */
export interface StandbyLag {
  name: string;
  state: string;
  /** Time the standby took, for the latest WAL it confirmed, to replay it (0 when caught up). */
  replayLagMs: number;
  /** WAL written on the primary that the standby has not replayed. */
  replayLagBytes: number;
}

/** The server's own recovery state and lag, read on the server itself (a standby or a primary). */
export async function standbyStatus(sql: Queryable): Promise<StandbyStatus> {
  const [r] = await sql<
    { standby: boolean; receiving: boolean | null; lag_ms: number | null; pending: number | null }[]
  >`
    select pg_is_in_recovery() as standby,
      case when pg_is_in_recovery()
        then exists (select 1 from pg_stat_wal_receiver where status = 'streaming') end as receiving,
      case when not pg_is_in_recovery() then null
        when pg_last_wal_receive_lsn() is null or pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() then 0
        else greatest(0, extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)
      end::float8 as lag_ms,
      case when pg_is_in_recovery()
        then greatest(0, coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)) end::float8 as pending
  `;
  return {
    standby: r!.standby,
    receiving: r!.receiving,
    lagMs: r!.lag_ms === null ? null : Math.round(r!.lag_ms),
    replayPendingBytes: r!.pending,
  };
}

/** The standbys streaming from this primary and how far behind each is (empty on a standby). */
export async function standbyLags(sql: Queryable): Promise<StandbyLag[]> {
  const rows = await sql<{ name: string; state: string; lag_ms: number; lag_bytes: number }[]>`
    select coalesce(nullif(application_name, ''), client_addr::text, pid::text) as name, state,
      coalesce(extract(epoch from replay_lag) * 1000, 0)::float8 as lag_ms,
      coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 as lag_bytes
    from pg_stat_replication
    where not pg_is_in_recovery()
    order by 1
  `;
  return rows.map((r) => ({
    name: r.name,
    state: r.state,
    replayLagMs: Math.round(r.lag_ms),
    replayLagBytes: r.lag_bytes,
  }));
}
