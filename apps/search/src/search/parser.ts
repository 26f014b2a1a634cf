/**
 * The message query language, close to Discord's search box:
 *
 *   words (all must match)   "exact phrase"   -exclude   a OR b   (grouping)   pref*
 *   from: in: guild: mentions: has: before: after: during: is:deleted   (-filter negates)
 *
 * The parser turns the text into a small tree; nothing here touches SQL. Errors carry the
 * 0-based character position and what was expected there, so the API can answer 400 with both.
 */

export type TextNode =
  | { kind: 'word'; text: string; prefix: boolean; position: number }
  /**
   * `words` only when the phrase holds a prefix (`"deploy fai*"`): its words in order; `open`
   * when search-as-you-type closed a quote left open at the end
   */
  | { kind: 'phrase'; text: string; position: number; words?: PhraseWord[]; open?: boolean }
  | { kind: 'not'; node: TextNode; position: number }
  | { kind: 'and'; nodes: TextNode[] }
  | { kind: 'or'; nodes: TextNode[] };

export interface PhraseWord {
  text: string;
  prefix: boolean;
}

export type HasValue = 'link' | 'mention' | 'emoji' | 'attachment' | 'code';
export const HAS_VALUES: readonly HasValue[] = ['link', 'mention', 'emoji', 'attachment', 'code'];

/** A user or channel as typed: an id (digits, or a <@id>/<#id> mention) or a name. */
export interface Ref {
  id?: string;
  name?: string;
  position: number;
}

export interface RefFilter {
  include: Ref[];
  exclude: Ref[];
}

export interface ParsedQuery {
  text: TextNode | null;
  from: RefFilter;
  in: RefFilter;
  guild: { include: string[]; exclude: string[] };
  mentions: RefFilter;
  has: { include: HasValue[]; exclude: HasValue[] };
  /** occurred_at >= since (inclusive; after:<timestamp> is inclusive too) */
  since: Date | null;
  /** occurred_at < until (exclusive) */
  until: Date | null;
  deleted: boolean | null;
}

export class QueryParseError extends Error {
  readonly position: number;
  readonly expected: string;
  constructor(position: number, expected: string, message?: string) {
    super(message ?? `at position ${position}: expected ${expected}`);
    this.name = 'QueryParseError';
    this.position = position;
    this.expected = expected;
  }
}

export const MAX_QUERY_LENGTH = 512;
const MAX_TERMS = 32;
const FILTER_KEYS = ['from', 'in', 'guild', 'mentions', 'has', 'before', 'after', 'during', 'is'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);
/** Characters that end a bare word. */
const isStop = (c: string | undefined) =>
  c === undefined || isSpace(c) || c === '(' || c === ')' || c === '"';

export interface ParseOptions {
  /** Search as you type: a quote or group left open at the end is closed (not an error). */
  asYouType?: boolean;
}

/** Parses `input` or throws QueryParseError. */
export function parseQuery(input: string, options: ParseOptions = {}): ParsedQuery {
  return new Parser(input, options.asYouType === true).parse();
}

class Parser {
  private pos = 0;
  private terms = 0;
  private readonly input: string;
  private readonly asYouType: boolean;
  private readonly out: ParsedQuery = {
    text: null,
    from: { include: [], exclude: [] },
    in: { include: [], exclude: [] },
    guild: { include: [], exclude: [] },
    mentions: { include: [], exclude: [] },
    has: { include: [], exclude: [] },
    since: null,
    until: null,
    deleted: null,
  };

  constructor(input: string, asYouType: boolean) {
    this.input = input;
    this.asYouType = asYouType;
  }

  parse(): ParsedQuery {
    if (this.input.length > MAX_QUERY_LENGTH) {
      throw new QueryParseError(MAX_QUERY_LENGTH, `at most ${MAX_QUERY_LENGTH} characters`);
    }
    const control = /[\u0000-\u0008\u000e-\u001f\u007f]/.exec(this.input);
    if (control) throw new QueryParseError(control.index, 'printable text (no control characters)');
    const nodes = this.sequence(false);
    this.skipSpace();
    if (this.pos < this.input.length) {
      // only a stray ")" stops the top-level sequence early
      throw new QueryParseError(this.pos, 'a word, phrase or filter (unmatched ")")');
    }
    const hasFilters =
      this.out.from.include.length + this.out.from.exclude.length > 0 ||
      this.out.in.include.length + this.out.in.exclude.length > 0 ||
      this.out.guild.include.length + this.out.guild.exclude.length > 0 ||
      this.out.mentions.include.length + this.out.mentions.exclude.length > 0 ||
      this.out.has.include.length + this.out.has.exclude.length > 0 ||
      this.out.since !== null ||
      this.out.until !== null ||
      this.out.deleted !== null;
    if (nodes.length === 0 && !hasFilters) {
      throw new QueryParseError(this.pos, 'a word, phrase or filter');
    }
    this.out.text = nodes.length === 0 ? null : nodes.length === 1 ? nodes[0]! : { kind: 'and', nodes };
    return this.out;
  }

  private skipSpace(): void {
    while (isSpace(this.input[this.pos])) this.pos++;
  }

  /** Clauses until the end (or a ")" when inside a group); OR binds tighter than AND. */
  private sequence(inGroup: boolean): TextNode[] {
    const nodes: TextNode[] = [];
    for (;;) {
      this.skipSpace();
      const c = this.input[this.pos];
      if (c === undefined || c === ')') break;
      const start = this.pos;
      if (this.isOrKeyword()) throw new QueryParseError(start, 'a word, phrase or ( before OR');
      const first = this.clause(inGroup);
      if (first === null) {
        // a filter: recorded, no text node
        const save = this.pos;
        this.skipSpace();
        if (this.isOrKeyword()) {
          throw new QueryParseError(start, 'a word, phrase or ( (filters cannot be combined with OR)');
        }
        this.pos = save;
        continue;
      }
      const alternatives = [first];
      for (;;) {
        const save = this.pos;
        this.skipSpace();
        if (!this.isOrKeyword()) {
          this.pos = save;
          break;
        }
        this.pos += 2;
        this.skipSpace();
        const at = this.pos;
        const c2 = this.input[this.pos];
        if (c2 === undefined || c2 === ')' || this.isOrKeyword()) {
          throw new QueryParseError(at, 'a word, phrase or ( after OR');
        }
        const next = this.clause(true, 'filters cannot be combined with OR');
        alternatives.push(next!);
      }
      nodes.push(alternatives.length === 1 ? first : { kind: 'or', nodes: alternatives });
    }
    return nodes;
  }

  private isOrKeyword(): boolean {
    return this.input.startsWith('OR', this.pos) && isStop(this.input[this.pos + 2]);
  }

  private countTerm(position: number): void {
    if (++this.terms > MAX_TERMS) throw new QueryParseError(position, `at most ${MAX_TERMS} terms`);
  }

  /** One clause: [-] ( group | "phrase" | filter | word ). Returns null for a filter. */
  private clause(inGroup: boolean, filterMessage = 'filters cannot be used inside ( )'): TextNode | null {
    const start = this.pos;
    let negated = false;
    if (this.input[this.pos] === '-') {
      negated = true;
      this.pos++;
      if (isStop(this.input[this.pos]) && this.input[this.pos] !== '"' && this.input[this.pos] !== '(') {
        throw new QueryParseError(this.pos, 'a word, phrase or filter after -');
      }
    }
    const c = this.input[this.pos];
    let node: TextNode;
    if (c === '(') {
      this.pos++;
      const inner = this.sequence(true);
      this.skipSpace();
      const closedByTyping = this.asYouType && this.pos === this.input.length;
      if (this.input[this.pos] !== ')' && !closedByTyping) {
        throw new QueryParseError(this.pos, '")" to close the group');
      }
      if (inner.length === 0) throw new QueryParseError(this.pos, 'a word or phrase inside ( )');
      if (!closedByTyping) this.pos++;
      node = inner.length === 1 ? inner[0]! : { kind: 'and', nodes: inner };
    } else if (c === '"') {
      const at = this.pos;
      const open = this.asYouType && !this.input.includes('"', at + 1);
      const text = open ? this.input.slice(at + 1) : this.quoted();
      if (open) this.pos = this.input.length;
      if (text.trim() === '') throw new QueryParseError(at, 'text inside the quotes');
      const words = phraseWords(text, at + 1);
      node = { kind: 'phrase', text, position: at, ...(words && { words }), ...(open && { open }) };
      this.countTerm(start);
    } else {
      const filter = /^([a-z]+):/i.exec(this.input.slice(this.pos));
      if (filter && (FILTER_KEYS as readonly string[]).includes(filter[1]!.toLowerCase())) {
        if (inGroup) throw new QueryParseError(start, `a word or phrase (${filterMessage})`);
        this.filter(filter[1]!.toLowerCase() as FilterKey, negated, start);
        return null;
      }
      node = this.word(negated ? start + 1 : start);
      this.countTerm(start);
    }
    return negated ? { kind: 'not', node, position: start } : node;
  }

  private quoted(): string {
    const open = this.pos;
    this.pos++;
    const close = this.input.indexOf('"', this.pos);
    if (close < 0) throw new QueryParseError(this.input.length, `a closing " for the quote at ${open}`);
    const text = this.input.slice(this.pos, close);
    this.pos = close + 1;
    return text;
  }

  private bare(): string {
    const from = this.pos;
    while (!isStop(this.input[this.pos])) this.pos++;
    return this.input.slice(from, this.pos);
  }

  private word(position: number): TextNode {
    const raw = this.bare();
    if (raw.endsWith('*') && raw.length > 1) {
      return { kind: 'word', text: prefixStem(raw, position), prefix: true, position };
    }
    return { kind: 'word', text: raw, prefix: false, position };
  }

  private filter(key: FilterKey, negated: boolean, start: number): void {
    this.pos += key.length + 1;
    const valueAt = this.pos;
    const c = this.input[this.pos];
    const value = c === '"' ? this.quoted() : this.bare();
    if (value.trim() === '') throw new QueryParseError(valueAt, expectation(key));
    this.countTerm(start);
    const add = <T>(f: { include: T[]; exclude: T[] }, v: T) => (negated ? f.exclude : f.include).push(v);
    switch (key) {
      case 'from':
      case 'mentions':
        add(this.out[key], userRef(value, valueAt));
        return;
      case 'in':
        add(this.out.in, channelRef(value, valueAt));
        return;
      case 'guild':
        if (!/^[0-9]{1,25}$/.test(value)) throw new QueryParseError(valueAt, expectation(key));
        add(this.out.guild, value);
        return;
      case 'has': {
        const v = value.toLowerCase() as HasValue;
        if (!HAS_VALUES.includes(v)) throw new QueryParseError(valueAt, expectation(key));
        add(this.out.has, v);
        return;
      }
      case 'is':
        if (value.toLowerCase() !== 'deleted') throw new QueryParseError(valueAt, expectation(key));
        this.out.deleted = !negated;
        return;
      default: {
        if (negated)
          throw new QueryParseError(start, `${key}: without - (negate a date by using the other one)`);
        const range = parseDateRange(value);
        if (!range) throw new QueryParseError(valueAt, expectation(key));
        // before: ends before the period starts; after: starts after the period ends
        if (key === 'before') this.narrow(null, range.start);
        else if (key === 'after') this.narrow(range.exact ? range.start : range.end, null);
        else this.narrow(range.start, range.end);
      }
    }
  }

  private narrow(since: Date | null, until: Date | null): void {
    if (since && (!this.out.since || since > this.out.since)) this.out.since = since;
    if (until && (!this.out.until || until < this.out.until)) this.out.until = until;
  }
}

/** The letters and digits before the final `*` of a prefix (at least 2), or QueryParseError. */
function prefixStem(raw: string, position: number, where = 'a prefix is one word'): string {
  const stem = raw.slice(0, -1);
  if (!/^[\p{L}\p{N}]+$/u.test(stem))
    throw new QueryParseError(position, `letters or digits before * (${where})`);
  if ([...stem].length < 2) throw new QueryParseError(position, 'at least 2 characters before *');
  return stem;
}

/**
 * A phrase's words when it holds a `*`: a word ending in `*` is a prefix at its place in the
 * phrase; any other `*` is refused rather than searched as nothing. `at` is where `text` starts.
 */
function phraseWords(text: string, at: number): PhraseWord[] | null {
  if (!text.includes('*')) return null;
  return [...text.matchAll(/\S+/g)].map((m) => {
    const position = at + m.index;
    if (!m[0].includes('*')) return { text: m[0], prefix: false };
    if (!m[0].endsWith('*') || m[0].indexOf('*') !== m[0].length - 1) {
      throw new QueryParseError(
        position + m[0].indexOf('*'),
        'a * only at the end of a word in a phrase (it makes that word a prefix)',
      );
    }
    return { text: prefixStem(m[0], position, 'a prefix in a phrase is one word'), prefix: true };
  });
}

function expectation(key: FilterKey): string {
  switch (key) {
    case 'from':
    case 'mentions':
      return `a user id, <@id> or username after ${key}:`;
    case 'in':
      return 'a channel id, <#id> or channel name after in:';
    case 'guild':
      return 'a guild id (digits) after guild:';
    case 'has':
      return `one of ${HAS_VALUES.join(', ')} after has:`;
    case 'is':
      return 'deleted after is:';
    default:
      return `a date like 2024, 2024-05, 2024-05-17 or 2024-05-17T10:00:00Z after ${key}:`;
  }
}

function userRef(value: string, position: number): Ref {
  const mention = /^<@!?([0-9]+)>$/.exec(value);
  if (mention) return { id: mention[1]!, position };
  if (/^[0-9]+$/.test(value)) return { id: value, position };
  return { name: value.replace(/^@/, ''), position };
}

function channelRef(value: string, position: number): Ref {
  const mention = /^<#([0-9]+)>$/.exec(value);
  if (mention) return { id: mention[1]!, position };
  if (/^[0-9]+$/.test(value)) return { id: value, position };
  return { name: value.replace(/^#/, ''), position };
}

/**
 * A date as typed: a year, a month, a day (UTC) or an exact ISO timestamp. Returns the period
 * [start, end); `exact` for a timestamp (start = end).
 */
export function parseDateRange(value: string): { start: Date; end: Date; exact: boolean } | null {
  const range = typedDateRange(value);
  // PostgreSQL has no year 0 and JS dates past 9999 print in a form it refuses.
  if (!range || range.start < FIRST_TIME || range.start > LAST_TIME) return null;
  return range.end > LAST_TIME ? { ...range, end: LAST_TIME } : range;
}

const FIRST_TIME = new Date('0001-01-01T00:00:00.000Z');
const LAST_TIME = new Date('9999-12-31T23:59:59.999Z');

function typedDateRange(value: string): { start: Date; end: Date; exact: boolean } | null {
  let m = /^(\d{4})$/.exec(value);
  if (m) {
    const y = Number(m[1]);
    return { start: utc(y, 0, 1), end: utc(y + 1, 0, 1), exact: false };
  }
  m = /^(\d{4})-(\d{2})$/.exec(value);
  if (m) {
    const y = Number(m[1]);
    const mo = Number(m[2]) - 1;
    if (mo < 0 || mo > 11) return null;
    return { start: utc(y, mo, 1), end: utc(y, mo + 1, 1), exact: false };
  }
  m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (m) {
    const y = Number(m[1]);
    const mo = Number(m[2]) - 1;
    const d = Number(m[3]);
    const start = utc(y, mo, d);
    if (start.getUTCMonth() !== mo || start.getUTCDate() !== d) return null;
    return { start, end: utc(y, mo, d + 1), exact: false };
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    const t = new Date(value);
    if (Number.isNaN(t.getTime())) return null;
    return { start: t, end: t, exact: true };
  }
  return null;
}

function utc(y: number, m: number, d: number): Date {
  const date = new Date(Date.UTC(y, m, d));
  if (y < 100) date.setUTCFullYear(y);
  return date;
}

/** The plain words of the query that must match (not negated): candidates for did-you-mean. */
export function positiveWords(node: TextNode | null): { text: string; position: number }[] {
  if (!node) return [];
  switch (node.kind) {
    case 'word':
      return node.prefix ? [] : [{ text: node.text, position: node.position }];
    case 'phrase':
      return [];
    case 'not':
      return [];
    default:
      return node.nodes.flatMap(positiveWords);
  }
}

/**
 * Search as you type: the token the query ends with is being typed, so its last word also
 * matches as a prefix once it has `minLength` letters or digits: a bare word (`deploy fai`), an
 * excluded word (`-fai`, which then excludes every word starting so), the last word of a phrase
 * whose quote is still open (`"deploy fai`). Nothing is a prefix when the query ends in a space,
 * a closing quote or parenthesis, or a filter (its value is taken as typed), nor any word before
 * the end. Call with the options the query was parsed with (`asYouType: true`).
 */
export function prefixLastWord(parsed: ParsedQuery, input: string, minLength = 3): ParsedQuery {
  if (!parsed.text || /[\s")]$/.test(input)) return parsed;
  const last = lastToken(parsed.text);
  if (last?.kind === 'word') {
    if (
      !last.prefix &&
      isPrefixable(last.text, minLength) &&
      last.position + last.text.length === input.length
    ) {
      last.prefix = true;
    }
  } else if (last?.kind === 'phrase' && last.open) {
    const words = last.words ?? [...last.text.matchAll(/\S+/g)].map((m) => ({ text: m[0], prefix: false }));
    const end = words[words.length - 1];
    if (end && !end.prefix && isPrefixable(end.text, minLength)) {
      end.prefix = true;
      last.words = words;
    }
  }
  return parsed;
}

const isPrefixable = (text: string, minLength: number) =>
  /^[\p{L}\p{N}]+$/u.test(text) && [...text].length >= minLength;

function lastToken(node: TextNode): Extract<TextNode, { kind: 'word' | 'phrase' }> | null {
  switch (node.kind) {
    case 'word':
    case 'phrase':
      return node;
    case 'not':
      return lastToken(node.node);
    case 'and':
    case 'or':
      return lastToken(node.nodes[node.nodes.length - 1]!);
  }
}
