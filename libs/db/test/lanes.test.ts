import { describe, expect, it } from 'vitest';
import { inLanes } from '../src/lanes.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('inLanes', () => {
  it('runs every item, never more than `lanes` at once', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await inLanes([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      most = Math.max(most, running);
      await tick(n % 3);
      done.push(n);
      running--;
    });
    expect(done.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(most).toBe(3);
  });

  it('after a failure starts nothing new, waits for the running items, then rejects with the first error', async () => {
    const started: string[] = [];
    const finished: string[] = [];
    const run = inLanes(['slow', 'fails', 'next', 'later'], 2, async (item) => {
      started.push(item);
      if (item === 'fails') throw new Error('fails failed');
      await tick(30);
      finished.push(item);
    });
    await expect(run).rejects.toThrow('fails failed');
    // 'slow' was running when 'fails' failed: it finished before the call settled.
    expect(finished).toEqual(['slow']);
    expect(started).toEqual(['slow', 'fails']);
  });
});
