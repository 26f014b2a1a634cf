import { describe, expect, it } from 'vitest';
import { parseQuery, prefixLastWord, QueryParseError, type TextNode } from '../src/search/parser.ts';

/** A compact rendering of the text tree: words, "phrases", pre*, -not, (a b), {a|b}. */
function show(node: TextNode | null): string {
  if (!node) return '';
  switch (node.kind) {
    case 'word':
      return node.prefix ? `${node.text}*` : node.text;
    case 'phrase':
      return node.words
        ? `"${node.words.map((w) => (w.prefix ? `${w.text}*` : w.text)).join(' ')}"`
        : `"${node.text}"`;
    case 'not':
      return `-${show(node.node)}`;
    case 'and':
      return `(${node.nodes.map(show).join(' ')})`;
    case 'or':
      return `{${node.nodes.map(show).join('|')}}`;
  }
}

const d = (s: string) => new Date(s);

describe('parseQuery: text', () => {
  it.each([
    ['deploy', 'deploy'],
    ['deploy failed', '(deploy failed)'],
    ['  spaced   out  ', '(spaced out)'],
    ['"exact phrase"', '"exact phrase"'],
    ['-spam', '-spam'],
    ['-"free nitro" gift', '(-"free nitro" gift)'],
    ['cat OR dog', '{cat|dog}'],
    ['a b OR c', '(a {b|c})'],
    ['a OR b OR c', '{a|b|c}'],
    ['(cat OR dog) food', '({cat|dog} food)'],
    ['-(cat dog)', '-(cat dog)'],
    ['((a))', 'a'],
    ['depl*', 'depl*'],
    ['café*', 'café*'],
    ['or and', '(or and)'],
    ['ORnament', 'ORnament'],
    ['note:this', 'note:this'],
    ['"a" "b"', '("a" "b")'],
    ['x-ray', 'x-ray'],
    ['*', '*'],
  ])('%s → %s', (input, expected) => {
    expect(show(parseQuery(input).text)).toBe(expected);
  });
});

describe('parseQuery: filters', () => {
  it('reads every filter', () => {
    const q = parseQuery(
      'from:alice from:<@123> -from:456 in:#general in:<#789> -in:dev guild:111 -guild:222 mentions:bob ' +
        '-mentions:<@!333> has:link -has:CODE is:deleted during:2024-05 word',
    );
    expect(show(q.text)).toBe('word');
    expect(q.from).toEqual({
      include: [
        { name: 'alice', position: 5 },
        { id: '123', position: 16 },
      ],
      exclude: [{ id: '456', position: 29 }],
    });
    expect(q.in.include.map((r) => r.name ?? r.id)).toEqual(['general', '789']);
    expect(q.in.exclude.map((r) => r.name)).toEqual(['dev']);
    expect(q.guild).toEqual({ include: ['111'], exclude: ['222'] });
    expect(q.mentions.include.map((r) => r.name)).toEqual(['bob']);
    expect(q.mentions.exclude.map((r) => r.id)).toEqual(['333']);
    expect(q.has).toEqual({ include: ['link'], exclude: ['code'] });
    expect(q.deleted).toBe(true);
    expect(q.since).toEqual(d('2024-05-01T00:00:00Z'));
    expect(q.until).toEqual(d('2024-06-01T00:00:00Z'));
  });

  it.each([
    ['before:2024-05-17', null, '2024-05-17T00:00:00Z'],
    ['after:2024-05-17', '2024-05-18T00:00:00Z', null],
    ['during:2024', '2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z'],
    ['during:2024-02-29', '2024-02-29T00:00:00Z', '2024-03-01T00:00:00Z'],
    ['after:2024-05-17T10:00:00Z', '2024-05-17T10:00:00Z', null],
    ['after:2024-01 before:2024-03-15', '2024-02-01T00:00:00Z', '2024-03-15T00:00:00Z'],
    ['during:2024 during:2024-06', '2024-06-01T00:00:00Z', '2024-07-01T00:00:00Z'],
    ['before:2024-05-17T12:30:00+02:00', null, '2024-05-17T10:30:00Z'],
  ])('%s', (input, since, until) => {
    const q = parseQuery(input);
    expect(q.text).toBeNull();
    expect(q.since).toEqual(since ? d(since) : null);
    expect(q.until).toEqual(until ? d(until) : null);
  });

  it('quoted filter values keep spaces and -is:deleted excludes', () => {
    const q = parseQuery('from:"John Doe" -is:deleted');
    expect(q.from.include).toEqual([{ name: 'John Doe', position: 5 }]);
    expect(q.deleted).toBe(false);
  });

  it('filter keys are case-insensitive', () => {
    expect(parseQuery('FROM:alice HAS:Link').has.include).toEqual(['link']);
  });

  it.each([
    ['deploy fai', '(deploy fai*)'],
    ['deploy fa', '(deploy fa)'],
    ['deploy fai ', '(deploy fai)'],
    ['deploy -fai', '(deploy -fai*)'],
    ['-"free nit', '-"free nit*"'],
    ['"deploy fai', '"deploy fai*"'],
    ['"deploy fai"', '"deploy fai"'],
    ['"deploy fai ', '"deploy fai "'],
    ['"deploy fa* serv', '"deploy fa* serv*"'],
    ['(cat OR dog', '{cat|dog*}'],
    ['((cat OR dog) foo', '({cat|dog} foo*)'],
    ['(cat OR dog)', '{cat|dog}'],
    ['fai from:bob', 'fai'],
    ['fai from:ali', 'fai'],
    ['deploy node.j', '(deploy node.j)'],
    ['deploy OR fai', '{deploy|fai*}'],
  ])('search as you type: %j → %s', (input, shown) => {
    expect(show(prefixLastWord(parseQuery(input, { asYouType: true }), input).text)).toBe(shown);
  });

  it('search as you type closes only what is open at the end', () => {
    expect(() => parseQuery('"deploy fai')).toThrow(QueryParseError);
    expect(() => parseQuery('(cat OR dog')).toThrow(QueryParseError);
    expect(() => parseQuery('from:"ali', { asYouType: true })).toThrow(QueryParseError);
    expect(() => parseQuery('deploy -', { asYouType: true })).toThrow(QueryParseError);
    expect(parseQuery('"a" "b c', { asYouType: true }).text).toMatchObject({
      kind: 'and',
      nodes: [
        { kind: 'phrase', text: 'a' },
        { kind: 'phrase', text: 'b c', open: true },
      ],
    });
  });

  it('search as you type makes the last bare word a prefix from 3 characters on', () => {
    expect(show(prefixLastWord(parseQuery('deploy fai'), 'deploy fai').text)).toBe('(deploy fai*)');
    expect(show(prefixLastWord(parseQuery('deploy fa'), 'deploy fa').text)).toBe('(deploy fa)');
    expect(show(prefixLastWord(parseQuery('deploy fai '), 'deploy fai ').text)).toBe('(deploy fai)');
    expect(show(prefixLastWord(parseQuery('"a phrase"'), '"a phrase"').text)).toBe('"a phrase"');
    expect(show(prefixLastWord(parseQuery('fai from:bob'), 'fai from:bob').text)).toBe('fai');
  });
});

describe('parseQuery: a prefix inside a phrase', () => {
  it('records the words of a phrase holding a *', () => {
    expect(parseQuery('"deploy fai*" now').text).toEqual({
      kind: 'and',
      nodes: [
        {
          kind: 'phrase',
          text: 'deploy fai*',
          position: 0,
          words: [
            { text: 'deploy', prefix: false },
            { text: 'fai', prefix: true },
          ],
        },
        { kind: 'word', text: 'now', prefix: false, position: 14 },
      ],
    });
    expect(parseQuery('"deploy failed"').text).toEqual({
      kind: 'phrase',
      text: 'deploy failed',
      position: 0,
    });
  });
});

describe('parseQuery: malformed input names the position and what was expected', () => {
  it.each([
    ['', 0, 'a word, phrase or filter'],
    ['   ', 3, 'a word, phrase or filter'],
    ['"unclosed', 9, 'a closing "'],
    ['deploy "unclosed', 16, 'a closing "'],
    ['""', 0, 'text inside the quotes'],
    ['from:', 5, 'a user id'],
    ['deploy in: x', 10, 'a channel id'],
    ['mentions:""', 9, 'a user id'],
    ['has:pictures', 4, 'one of link, mention, emoji, attachment, code'],
    ['is:pinned', 3, 'deleted'],
    ['guild:abc', 6, 'a guild id'],
    ['before:2024-13-01', 7, 'a date like'],
    ['during:2024-02-30', 7, 'a date like'],
    ['after:yesterday', 6, 'a date like'],
    ['-before:2024', 0, 'without -'],
    ['OR deploy', 0, 'before OR'],
    ['deploy OR', 9, 'after OR'],
    ['deploy OR OR x', 10, 'after OR'],
    ['a OR from:bob', 5, 'filters cannot be combined with OR'],
    ['from:bob OR a', 0, 'filters cannot be combined with OR'],
    ['(a from:bob)', 3, 'filters cannot be used inside ( )'],
    ['(a b', 4, '")" to close the group'],
    ['()', 1, 'a word or phrase inside ( )'],
    ['a )', 2, 'unmatched ")"'],
    ['-', 1, 'after -'],
    ['a - b', 3, 'after -'],
    ['d*', 0, 'at least 2 characters before *'],
    ['de-p*', 0, 'letters or digits before *'],
    ['x *y', 2, ''],
    ['"a*b"', 2, 'a * only at the end of a word in a phrase'],
    ['"**bold**"', 1, 'a * only at the end of a word in a phrase'],
    ['"deploy x*"', 8, 'at least 2 characters before *'],
    ['-"de-p* x"', 2, 'letters or digits before * (a prefix in a phrase is one word)'],
    ['deploy\u0000', 6, 'printable text'],
    ['x'.repeat(513), 512, 'at most 512 characters'],
    [Array.from({ length: 33 }, (_, i) => `w${i}`).join(' '), 118, 'at most 32 terms'],
  ])('%j → position %i', (input, position, expected) => {
    let error: unknown;
    try {
      parseQuery(input);
    } catch (e) {
      error = e;
    }
    if (input === 'x *y') {
      // "*y" is a word (a * is only special at the end): no error
      expect(error).toBeUndefined();
      return;
    }
    expect(error).toBeInstanceOf(QueryParseError);
    const e = error as QueryParseError;
    expect(e.position).toBe(position);
    expect(e.expected).toContain(expected);
    expect(e.message).toContain(`position ${position}`);
  });
});
