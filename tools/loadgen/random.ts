/** sfc32: a small, fast, seedable PRNG, so a seed always yields the same activity. */
export function seededRandom(seed: number | string): () => number {
  let h = 1779033703 ^ String(seed).length;
  const s = String(seed);
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  const next = () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    h ^= h >>> 16;
    return h >>> 0;
  };
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  return () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

export interface Rng {
  next(): number;
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
  /** Weighted choice: weights need not sum to 1. */
  weighted<T extends string>(weights: Readonly<Record<T, number>>): T;
  hex(bytes: number): string;
}

export function createRng(seed: number | string): Rng {
  const r = seededRandom(seed);
  return {
    next: r,
    int: (min, max) => min + Math.floor(r() * (max - min + 1)),
    pick: (items) => items[Math.floor(r() * items.length)]!,
    chance: (p) => r() < p,
    weighted(weights) {
      const entries = Object.entries(weights) as [string, number][];
      const total = entries.reduce((s, [, w]) => s + w, 0);
      let x = r() * total;
      for (const [k, w] of entries) {
        x -= w;
        if (x < 0) return k as never;
      }
      return entries[entries.length - 1]![0] as never;
    },
    hex(bytes) {
      let out = '';
      for (let i = 0; i < bytes; i++)
        out += Math.floor(r() * 256)
          .toString(16)
          .padStart(2, '0');
      return out;
    },
  };
}
