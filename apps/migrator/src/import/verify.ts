import { encodeCopyField, type Sql } from '@spywatcher/db';
import { timed } from './bulk.ts';
import { canonicalSql, hashProbe, hashSumSql } from './canonical.ts';
import { RowEncoder } from './encode.ts';
import { legacyEventId } from './ids.ts';
import type { LegacySource } from './source.ts';
import {
  type Column,
  type ConvertContext,
  eventCreatedAt,
  hashColumns,
  type Row,
  safeColumnsSql,
  type TableSpec,
  TOKEN_COLUMNS,
} from './tables.ts';
import { isProblem } from './values.ts';

export interface VerifyResult {
  ok: boolean;
  sourceRows: number;
  targetRows: number;
  sourceHash: string;
  targetHash: string;
  message?: string;
  /** Rows whose canonical form differs (legacy id, what the source says, what is stored). */
  samples?: { legacy_id: string; expected: string | null; actual: string | null }[];
}

/** Rows of the target that came from a legacy import, with their legacy id expression. */
function targetFrom(spec: TableSpec): { from: string; legacyId: string } {
  return spec.kind === 'event'
    ? { from: `${spec.target} t where t.metadata ? 'legacy_id'`, legacyId: `t.metadata->>'legacy_id'` }
    : { from: spec.verifyFrom, legacyId: 'm.legacy_id' };
}

/**
 * Checks that the server's `hashtextextended` is the function the import summed (PostgreSQL
 * computes it differently on big-endian machines), so a difference means a difference in rows.
 */
export async function checkServerHash(sql: Sql): Promise<void> {
  const probe = hashProbe();
  const [row] = await sql<{ h: string }[]>`select hashtextextended(${probe.text}, 0)::text as h`;
  if (row?.h !== probe.hash.toString()) {
    throw new Error(
      `the target server's hashtextextended() differs from the import's (${row?.h} instead of ${probe.hash}): content hashes cannot be compared`,
    );
  }
}

/**
 * Compares the rows and content hash accumulated from the source while importing (kept in
 * the checkpoint) with the same figures computed by PostgreSQL over the stored rows. On a
 * difference, re-reads the source to name sample rows that differ.
 */
export async function verifyTable(
  sql: Sql,
  source: LegacySource,
  spec: TableSpec,
  ctx: ConvertContext,
  expected: { rows: bigint; hash: bigint },
  time: (step: string, ms: number) => void = () => {},
): Promise<VerifyResult> {
  const columns = hashColumns(spec);
  const { from } = targetFrom(spec);
  const conn = await sql.reserve();
  let row: { n: string; h: string } | undefined;
  try {
    const [backend] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
    [row] = await timed(time, 'verify_scan', backend?.pid ?? null, () =>
      conn.unsafe<{ n: string; h: string }[]>(
        `select count(*)::text as n, ${hashSumSql(canonicalSql(columns))} as h from ${from}`,
      ),
    );
  } finally {
    conn.release();
  }
  const result: VerifyResult = {
    ok: BigInt(row!.n) === expected.rows && row!.h === expected.hash.toString(),
    sourceRows: Number(expected.rows),
    targetRows: Number(row!.n),
    sourceHash: expected.hash.toString(),
    targetHash: row!.h,
  };
  if (!result.ok) {
    result.message =
      result.sourceRows !== result.targetRows
        ? `${spec.target} holds ${result.targetRows} imported rows, the source gave ${result.sourceRows}`
        : `${spec.target}: same row count (${result.targetRows}) but the content hash differs`;
    result.samples = await sampleDifferences(sql, source, spec, ctx);
  }
  return result;
}

/**
 * A canonical row as a report may show it: fields joined by " | ", the OAuth token columns
 * replaced by [redacted] (encrypted or not, they have no place in a report).
 */
function show(columns: Column[], canon: string | null): string | null {
  if (canon === null) return null;
  const fields = canon.split('\x1f');
  columns
    .filter((c) => c.verify !== false)
    .forEach((c, i) => {
      if ((TOKEN_COLUMNS as readonly string[]).includes(c.name) && i < fields.length)
        fields[i] = '[redacted]';
    });
  return fields.join(' | ').slice(0, 300);
}

async function sampleDifferences(sql: Sql, source: LegacySource, spec: TableSpec, ctx: ConvertContext) {
  const columns = hashColumns(spec);
  const { from, legacyId } = targetFrom(spec);
  const conn = await sql.reserve();
  try {
    await conn`create temp table if not exists _verify_source (legacy_id text primary key, canon text not null)`;
    await conn`truncate _verify_source`;
    const list = spec.kind === 'event' ? safeColumnsSql(spec, '') : '*';
    const stmt = source.db.prepare(`select ${list} from "${spec.legacy}" order by id`);
    if (spec.kind === 'reference') stmt.setReadBigInts(true);
    let chunk = '';
    const flush = async () => {
      if (chunk === '') return;
      const w = await conn`copy _verify_source (legacy_id, canon) from stdin`.writable();
      await new Promise<void>((resolve, reject) => {
        w.on('error', reject);
        w.on('finish', resolve);
        w.end(chunk);
      });
      chunk = '';
    };
    const encoder = new RowEncoder(spec.columns, false);
    for (const r of stmt.iterate() as Iterable<Row>) {
      if (spec.kind === 'event') {
        const ms = eventCreatedAt(r);
        const converted = isProblem(ms) ? ms : spec.convert(r, {});
        if (isProblem(converted)) continue;
        const legacyId = Number(r.id);
        encoder.event(legacyEventId(spec.code, ms as number, legacyId), ms as number, legacyId, converted);
      } else {
        const converted = spec.convert(r, {}, ctx);
        if (isProblem(converted)) continue;
        encoder.row(converted);
      }
      chunk += `${encodeCopyField(String(r.id))}\t${encodeCopyField(encoder.canonical)}\n`;
      if (chunk.length > 4_000_000) await flush();
    }
    await flush();
    const rows = await conn.unsafe<{ legacy_id: string; expected: string | null; actual: string | null }[]>(
      `select coalesce(s.legacy_id, t.legacy_id) as legacy_id, s.canon as expected, t.canon as actual
       from _verify_source s
       full join (select ${legacyId} as legacy_id, ${canonicalSql(columns)} as canon from ${from}) t
         on t.legacy_id = s.legacy_id
       where s.canon is distinct from t.canon
       order by 1 limit 5`,
    );
    await conn`drop table _verify_source`;
    return rows.map((r) => ({
      legacy_id: r.legacy_id,
      expected: show(columns, r.expected),
      actual: show(columns, r.actual),
    }));
  } finally {
    conn.release();
  }
}
