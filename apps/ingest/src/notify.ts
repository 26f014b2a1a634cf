import type { NatsConnection } from '@nats-io/transport-node';
import { type NatsNames, subjects } from '@spywatcher/events';
import type { StoredGroup } from './store.ts';

/**
 * After a commit: `<prefix>.stored.<type>` with `{ type, count, ids, maxPosition }` so projections
 * and other listeners wake up without polling. Core NATS (not persisted): a listener that
 * misses one still finds the rows by position.
 */
export function publishStored(nc: NatsConnection, names: NatsNames, groups: readonly StoredGroup[]): void {
  const s = subjects(names);
  for (const g of groups) {
    try {
      nc.publish(
        s.stored(g.type),
        JSON.stringify({ type: g.type, count: g.ids.length, ids: g.ids, maxPosition: g.maxPosition }),
      );
    } catch {
      // closed or draining connection: the rows are committed; listeners catch up by position
    }
  }
}
