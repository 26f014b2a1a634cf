/**
 * Background load for `bench:projections -- --contended`: what shares the server in production
 * while the projections keep up and the endpoints answer. Message searches and analytics
 * questions run back to back (one client each), and a second writer stores events at a steady
 * rate, until stopped.
 */
export interface ContentionDeps {
  /** One HTTP request to the search service; resolves with its status code. */
  request: (url: string) => Promise<number>;
  searchUrls: readonly string[];
  analyticsUrls: readonly string[];
  /** Stores `count` new events (the second writer). */
  write: (count: number) => Promise<void>;
  writeRate: number;
}

export interface ContentionStats {
  seconds: number;
  searches: number;
  analytics: number;
  written: number;
}

export interface Contention {
  stop: () => Promise<ContentionStats>;
}

const TICK_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startContention(deps: ContentionDeps): Contention {
  const began = performance.now();
  let stopping = false;
  const counts = { searches: 0, analytics: 0, written: 0 };

  const clientLoop = async (urls: readonly string[], kind: 'searches' | 'analytics') => {
    for (let i = 0; !stopping; i++) {
      const url = urls[i % urls.length]!;
      const status = await deps.request(url);
      if (status !== 200) throw new Error(`contention: ${url} answered ${status}`);
      counts[kind]++;
    }
  };

  // Fixed rate: each tick writes its share, then waits for the next tick's due time.
  const writerLoop = async () => {
    const perTick = Math.max(1, Math.round((deps.writeRate * TICK_MS) / 1000));
    for (let tick = 0; !stopping; tick++) {
      await deps.write(perTick);
      counts.written += perTick;
      const wait = began + (tick + 1) * TICK_MS - performance.now();
      if (wait > 0) await sleep(wait);
    }
  };

  const loops = [
    clientLoop(deps.searchUrls, 'searches'),
    clientLoop(deps.analyticsUrls, 'analytics'),
    ...(deps.writeRate > 0 ? [writerLoop()] : []),
  ];
  // A failing loop must not become an unhandled rejection before stop() awaits it.
  for (const loop of loops) loop.catch(() => {});

  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      return { seconds: (performance.now() - began) / 1000, ...counts };
    },
  };
}
