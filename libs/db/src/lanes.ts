/**
 * Runs `fn` over `items`, `lanes` at a time: each lane takes the next item when its last one is
 * done (the lanes are usually connections, each keeping one server core busy).
 *
 * After the first failure no lane starts another item, and the call settles only when the items
 * already running have finished, then rejects with that first error. Callers rely on that: a
 * rebuild releases its lock, or an import its connections, once this returns, so no item may
 * still be writing behind it.
 */
export async function inLanes<T>(
  items: readonly T[],
  lanes: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  let failure: { error: unknown } | undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, lanes) }, async () => {
      while (failure === undefined && queue.length > 0) {
        const item = queue.shift()!;
        try {
          await fn(item);
        } catch (error) {
          failure ??= { error };
        }
      }
    }),
  );
  if (failure) throw failure.error;
}
