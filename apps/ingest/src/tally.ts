import type { Counter } from '@spywatcher/service';

/** Events counted by type label, added to a counter once per type instead of once per event. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(type: string): void {
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
  }

  addTo(counter: Counter<'type' | 'source'>, source: string): void {
    for (const [type, n] of this.counts) counter.inc({ type, source }, n);
  }
}
