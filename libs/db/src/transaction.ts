import type { Sql, TransactionSql } from './client.ts';

/** SQLSTATEs for which re-running the whole transaction is the documented remedy. */
const RETRYABLE = new Set(['40001', '40P01']);

export interface TransactionOptions {
  /** Attempts in total, the first included. */
  attempts?: number;
  /** Isolation level; READ COMMITTED is PostgreSQL's default. */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** Base delay of the jittered exponential backoff between attempts. */
  baseDelayMs?: number;
}

export function isRetryableTransactionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return typeof code === 'string' && RETRYABLE.has(code);
}

/**
 * Runs `work` in a transaction and re-runs it on serialization failures and deadlocks.
 * `work` must therefore be safe to run again: it gets a fresh transaction each time.
 */
export async function withTransaction<T>(
  sql: Sql,
  work: (tx: TransactionSql) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  const baseDelay = options.baseDelayMs ?? 10;
  for (let attempt = 1; ; attempt++) {
    try {
      return (await sql.begin(async (tx) => {
        if (options.isolation) await tx.unsafe(`set transaction isolation level ${options.isolation}`);
        return work(tx as TransactionSql);
      })) as T;
    } catch (error) {
      if (attempt >= attempts || !isRetryableTransactionError(error)) throw error;
      const delay = baseDelay * 2 ** (attempt - 1) * (0.5 + Math.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
