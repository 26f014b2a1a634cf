/**
 * The contract of `<prefix>.ingest.control.*`, between ops (which holds the writers around a
 * restore) and ingest (which pauses, drains, replays and resumes).
 */

/** `pause`: every ingest instance writing to `database` answers once its writes have drained. */
export interface PauseRequest {
  database: string;
  /** Who holds the pause; `renew` and `resume` name it again. */
  holder: string;
  /** Ingest resumes by itself when the pause is not renewed within this many ms. */
  leaseMs: number;
}

export interface PauseReply {
  ok: boolean;
  paused?: boolean;
  instance?: string;
  drainedMs?: number;
  error?: { message: string };
}

/** `replay`: one ingest instance replays the stream from `since` into `database`. */
export interface ReplayRequest {
  database: string;
  since: string;
  holder?: string;
}

/** What a replay did, for the restore report. */
export interface ReplayReport {
  /** Events the restored database did not have, now stored. */
  replayed: number;
  /** Events it already had (in the backup, or stored again since). */
  already_present: number;
  /**
   * True when the stream has dropped messages (its retention, NATS_MAX_AGE_MS) and its oldest
   * one is newer than `since`: events in between are gone for good.
   */
  beyond_retention: boolean;
  /** Messages that are not valid events, conflicts or rows PostgreSQL refuses (dead-lettered when first consumed). */
  invalid: number;
  since: string;
  /** Time of the stream's oldest message (null: empty stream). */
  stream_first_at: string | null;
  /** Messages read from the stream. */
  messages: number;
}

export interface ReplayReply {
  ok: boolean;
  report?: ReplayReport;
  error?: { message: string };
}
