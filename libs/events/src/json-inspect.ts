/**
 * Checks on arbitrary decoded JSON that must hold before anything recursive (JSON.stringify,
 * a schema validator, postgres.js) touches it: nesting depth, node count, and strings (keys
 * included) that PostgreSQL can store. The walk is iterative, so a value nested thousands of
 * levels deep is measured and refused instead of overflowing the stack.
 */

export interface JsonProblem {
  /** JSON pointer below the walked value ('' for the value itself). */
  path: string;
  kind: 'too_deep' | 'too_many_nodes' | 'nul' | 'lone_surrogate';
  /** For strings: the index (UTF-16 code unit) of the first bad character. */
  at?: number;
  /** True when the bad string is an object key (the last part of `path`), not a value. */
  inKey?: boolean;
}

export interface JsonLimits {
  /** Levels of objects/arrays allowed (the walked value itself is level 1 when it is one). */
  maxDepth: number;
  /** Values (objects, arrays, scalars, keys) visited at most; beyond, the walk stops. */
  maxNodes: number;
}

const pointerPart = (key: string | number) => `/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/** Index of the first NUL or lone surrogate in `s`, with its kind; undefined when storable. */
export function stringProblem(s: string): { kind: 'nul' | 'lone_surrogate'; at: number } | undefined {
  const nul = s.indexOf('\u0000');
  if (s.isWellFormed()) return nul === -1 ? undefined : { kind: 'nul', at: nul };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return { kind: 'nul', at: i };
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return { kind: 'lone_surrogate', at: i };
    }
    if (c >= 0xdc00 && c <= 0xdfff) return { kind: 'lone_surrogate', at: i };
  }
  return nul === -1 ? undefined : { kind: 'nul', at: nul };
}

interface Node {
  value: unknown;
  depth: number;
  parent: Node | undefined;
  key: string | number;
}

/** JSON pointer of a node, built only when a problem is reported. */
function pathOf(node: Node | undefined): string {
  let path = '';
  for (let n = node; n?.parent; n = n.parent) path = pointerPart(n.key) + path;
  return path;
}

/** The first problem found in `value` (depth-first), or undefined. Never recurses, never throws. */
export function inspectJson(value: unknown, limits: JsonLimits): JsonProblem | undefined {
  const stack: Node[] = [{ value, depth: 0, parent: undefined, key: '' }];
  let nodes = 0;
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (++nodes > limits.maxNodes) return { path: pathOf(node), kind: 'too_many_nodes' };
    if (typeof v === 'string') {
      const p = stringProblem(v);
      if (p) return { path: pathOf(node), kind: p.kind, at: p.at };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const depth = node.depth + 1;
    if (depth > limits.maxDepth) return { path: pathOf(node), kind: 'too_deep' };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth, parent: node, key: i });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const child: Node = { value: (v as Record<string, unknown>)[key], depth, parent: node, key };
      const p = stringProblem(key);
      if (p) return { path: pathOf(child), kind: p.kind, at: p.at, inKey: true };
      if (++nodes > limits.maxNodes) return { path: pathOf(node), kind: 'too_many_nodes' };
      stack.push(child);
    }
  }
  return undefined;
}
