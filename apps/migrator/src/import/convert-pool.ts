import { Worker } from 'node:worker_threads';
import type { Batch } from './batch.ts';
import type { UnitRange } from './reads.ts';

export interface WorkerSetup {
  file: string;
  /** The period index to attach (bulk.ts), or null for id ranges only. */
  periods: string | null;
  now: number;
}

export type ToWorker =
  | { type: 'open'; unit: number; table: string; range: UnitRange }
  | { type: 'next'; unit: number; limit: number; withCopy: boolean }
  | { type: 'close'; unit: number };

type FromWorker =
  | {
      type: 'batch';
      unit: number;
      batch: Omit<Batch, 'copy'>;
      bytes: ArrayBuffer;
      length: number;
    }
  | { type: 'error'; unit: number; message: string };

/** Batches of one unit, read and converted ahead by a worker: at most one waits while one loads. */
export interface UnitBatches {
  next(): Promise<Batch>;
  close(): void;
}

interface Waiting {
  resolve: (b: Batch) => void;
  reject: (e: Error) => void;
}

/**
 * Conversion workers (convert-worker.ts). Each unit (a period of an event table) is read by one
 * worker, which builds its next batch while the main thread COPYs the last one.
 */
export class ConvertPool {
  private readonly workers: Worker[];
  private closing = false;
  private readonly waiting = new Map<number, Waiting[]>();
  private nextUnit = 0;
  private failure: Error | null = null;

  constructor(setup: WorkerSetup, size: number) {
    const url = new URL('./convert-worker.ts', import.meta.url);
    this.workers = Array.from({ length: Math.max(1, size) }, () => {
      // A worker holds at most two batches of one unit at a time: a small heap keeps RSS bounded.
      // The young generation is capped too: V8 grows it when many objects survive a scavenge, and
      // uncapped it became most of the import's peak RSS; a row's objects die young either way.
      const w = new Worker(url, {
        workerData: setup,
        resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 },
      });
      w.on('message', (m: FromWorker) => this.receive(m));
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (code !== 0 && !this.closing) this.fail(new Error(`a conversion worker exited with code ${code}`));
      });
      return w;
    });
  }

  private receive(m: FromWorker): void {
    const waiter = this.waiting.get(m.unit)?.shift();
    if (m.type === 'error') {
      const error = new Error(`conversion worker: ${m.message}`);
      if (waiter) waiter.reject(error);
      else this.fail(error);
      return;
    }
    waiter?.resolve({ ...m.batch, copy: Buffer.from(m.bytes, 0, m.length) });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const list of this.waiting.values()) for (const w of list.splice(0)) w.reject(error);
  }

  /** Reads `range` of `table` on one worker, `limit` rows a batch, one batch ahead. */
  open(table: string, range: UnitRange, limit: number, withCopy: boolean): UnitBatches {
    const unit = this.nextUnit++;
    const worker = this.workers[unit % this.workers.length]!;
    const post = (m: ToWorker) => worker.postMessage(m);
    this.waiting.set(unit, []);
    const request = () =>
      new Promise<Batch>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        this.waiting.get(unit)!.push({ resolve, reject });
        post({ type: 'next', unit, limit, withCopy });
      });
    post({ type: 'open', unit, table, range });
    let ahead: Promise<Batch> | null = request();
    return {
      next: async () => {
        const b = await ahead!;
        ahead = b.rows === 0 && b.rejects.length === 0 ? null : request();
        // a failed read ahead is reported when it is asked for
        ahead?.catch(() => {});
        return b;
      },
      close: () => {
        this.waiting.delete(unit);
        post({ type: 'close', unit });
      },
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
