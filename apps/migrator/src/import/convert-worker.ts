/**
 * A conversion worker (a worker thread of the import): reads the rows of the event units it is
 * given from its own connection to the legacy file, converts, encodes and hashes them, and posts
 * each batch back with its COPY data transferred, not copied. The main thread keeps the
 * PostgreSQL side; with two workers both cores convert while PostgreSQL loads.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { buildBatch } from './batch.ts';
import { attachPeriodIndex } from './bulk.ts';
import type { ToWorker, WorkerSetup } from './convert-pool.ts';
import { selectRows } from './reads.ts';
import { type ConvertContext, type Row, TABLE_SPECS } from './tables.ts';

const setup = workerData as WorkerSetup;
const db = new DatabaseSync(setup.file, { readOnly: true });
if (setup.periods) attachPeriodIndex(db, setup.periods);
// Event rows need only the time the import started (for future dates).
const ctx: ConvertContext = { now: setup.now, rejectedUsers: new Set(), userExists: () => true };
const units = new Map<number, { spec: (typeof TABLE_SPECS)[number]; rows: Iterator<Row> }>();

parentPort!.on('message', (m: ToWorker) => {
  try {
    if (m.type === 'open') {
      const spec = TABLE_SPECS.find((s) => s.legacy === m.table)!;
      units.set(m.unit, { spec, rows: selectRows(db, spec, m.range) });
    } else if (m.type === 'next') {
      const u = units.get(m.unit)!;
      const b = buildBatch(u.spec, u.rows, m.limit, ctx, m.withCopy);
      if (b.rows === 0 && b.rejects.length === 0) units.delete(m.unit);
      // the batch's bytes are a view of a buffer of their own: hand that buffer over
      const bytes = b.copy;
      const transfer =
        bytes.byteOffset === 0 && bytes.buffer.byteLength > 0 ? [bytes.buffer as ArrayBuffer] : [];
      parentPort!.postMessage(
        {
          type: 'batch',
          unit: m.unit,
          batch: { ...b, copy: null },
          bytes: bytes.buffer,
          length: bytes.length,
        },
        transfer,
      );
    } else if (m.type === 'close') {
      units.get(m.unit)?.rows.return?.();
      units.delete(m.unit);
    }
  } catch (error) {
    parentPort!.postMessage({
      type: 'error',
      unit: 'unit' in m ? m.unit : -1,
      message: (error as Error).message,
    });
  }
});
