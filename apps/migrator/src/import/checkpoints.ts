import { jsonb, type Sql, type TransactionSql } from '@spywatcher/db';
import type { Batch } from './batch.ts';
import type { Findings, TableSpec } from './tables.ts';

/** How far a unit (a reference table, an event table's period or id range) was imported. */
export interface Checkpoint {
  lastKey: string | null;
  imported: bigint;
  rejected: bigint;
  hash: bigint;
  findings: Findings;
  minMs: number | null;
}

export const emptyCheckpoint = (): Checkpoint => ({
  lastKey: null,
  imported: 0n,
  rejected: 0n,
  hash: 0n,
  findings: {},
  minMs: null,
});

export function mergeFindings(into: Findings, add: Findings): Findings {
  const out = { ...into };
  for (const [k, v] of Object.entries(add))
    out[k as keyof Findings] = (out[k as keyof Findings] ?? 0) + (v ?? 0);
  return out;
}

const earliest = (a: number | null, b: number | null) => (b === null ? a : a === null ? b : Math.min(a, b));

/** The checkpoint once `b` is imported too. */
export function advance(state: Checkpoint, b: Batch): Checkpoint {
  return {
    lastKey: b.lastKey ?? state.lastKey,
    imported: state.imported + BigInt(b.rows),
    rejected: state.rejected + BigInt(b.rejects.length),
    hash: state.hash + b.hash,
    findings: mergeFindings(state.findings, b.findings),
    minMs: earliest(state.minMs, b.minMs),
  };
}

/** A table's figures summed over its units' checkpoints. */
export function aggregate(states: Map<string, Checkpoint>, spec: TableSpec): Checkpoint {
  let out = emptyCheckpoint();
  for (const [key, cp] of states) {
    if (key !== spec.legacy && !key.startsWith(`${spec.legacy}#`) && !key.startsWith(`${spec.legacy}@`))
      continue;
    out = {
      lastKey: null,
      imported: out.imported + cp.imported,
      rejected: out.rejected + cp.rejected,
      hash: out.hash + cp.hash,
      findings: mergeFindings(out.findings, cp.findings),
      minMs: earliest(out.minMs, cp.minMs),
    };
  }
  return out;
}

export async function loadCheckpoints(sql: Sql, key: string): Promise<Map<string, Checkpoint>> {
  const rows = await sql<
    {
      source_table: string;
      last_key: string | null;
      rows_imported: string;
      rows_rejected: string;
      rows_hash: string;
      findings: Findings;
      min_ms: string | null;
    }[]
  >`
    select source_table, last_key, rows_imported, rows_rejected, rows_hash::text, findings,
           (extract(epoch from min_occurred_at) * 1000)::bigint::text as min_ms
    from import_checkpoints where source_key = ${key}
  `;
  return new Map(
    rows.map((r) => [
      r.source_table,
      {
        lastKey: r.last_key,
        imported: BigInt(r.rows_imported),
        rejected: BigInt(r.rows_rejected),
        hash: BigInt(r.rows_hash),
        findings: r.findings,
        minMs: r.min_ms === null ? null : Number(r.min_ms),
      },
    ]),
  );
}

export async function saveCheckpoint(
  tx: TransactionSql,
  key: string,
  table: string,
  cp: Checkpoint,
  completed: boolean,
): Promise<void> {
  await tx`
    insert into import_checkpoints
      (source_key, source_table, last_key, rows_imported, rows_rejected, rows_hash, findings, min_occurred_at, completed, updated_at)
    values (${key}, ${table}, ${cp.lastKey}, ${cp.imported.toString()}, ${cp.rejected.toString()},
            ${cp.hash.toString()}::numeric, ${jsonb(tx, cp.findings)},
            ${cp.minMs === null ? null : new Date(cp.minMs)}, ${completed}, now())
    on conflict (source_key, source_table) do update set
      last_key = excluded.last_key, rows_imported = excluded.rows_imported, rows_rejected = excluded.rows_rejected,
      rows_hash = excluded.rows_hash, findings = excluded.findings, min_occurred_at = excluded.min_occurred_at,
      completed = excluded.completed, updated_at = now()
  `;
}
