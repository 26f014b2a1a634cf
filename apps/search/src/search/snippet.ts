/**
 * Snippets: PostgreSQL marks every match in the whole message (ts_headline with HighlightAll, on
 * the text with identifiers joined as the index joins them), and the excerpt is cut here, at
 * whitespace, so it starts a few words before the first match and keeps short words.
 */
import { MARK_START, MARK_STOP } from './sql.ts';

/** Words kept before the first match, and their length budget in characters. */
export const WORDS_BEFORE = 6;
const CHARS_BEFORE = 80;
/** The excerpt ends after this many words or once past this many characters. */
export const SNIPPET_WORDS = 30;
const SNIPPET_CHARS = 240;
const ELLIPSIS = '…';

const MARKS = new RegExp(`[${MARK_START}${MARK_STOP}]`, 'g');

/** The message without characters that would read as marks. */
export const withoutMarks = (content: string) => content.replace(MARKS, '');

/**
 * The message with the marks of `highlighted` put in: the highlighted text is the message with
 * identifiers joined ("node.js" → "node-js", same length), so every other character is taken
 * from the message itself. Returns `highlighted` unchanged if the lengths do not line up.
 */
export function restoreMarks(content: string, highlighted: string): string {
  const clean = withoutMarks(content);
  if (highlighted.replace(MARKS, '').length !== clean.length) return highlighted;
  let out = '';
  let j = 0;
  for (const c of highlighted) {
    if (c === MARK_START || c === MARK_STOP) out += c;
    else {
      out += clean.slice(j, j + c.length);
      j += c.length;
    }
  }
  return out;
}

/**
 * The excerpt of a marked message: from a word boundary up to WORDS_BEFORE words (at most
 * CHARS_BEFORE characters) before the first match, to SNIPPET_WORDS words or SNIPPET_CHARS
 * characters; "…" where text was left out. Without a match it starts at the beginning.
 */
export function excerpt(marked: string): string {
  const words = [...marked.matchAll(/\S+/g)].map((m) => ({ from: m.index, to: m.index + m[0].length }));
  if (words.length === 0) return '';
  const first = Math.max(
    0,
    words.findIndex((w) => marked.slice(w.from, w.to).includes(MARK_START)),
  );
  let start = first;
  while (
    start > 0 &&
    first - start < WORDS_BEFORE &&
    words[first]!.from - words[start - 1]!.from <= CHARS_BEFORE
  ) {
    start--;
  }
  let end = first + 1;
  while (
    end < words.length &&
    end - start < SNIPPET_WORDS &&
    words[end]!.to - words[start]!.from <= SNIPPET_CHARS
  ) {
    end++;
  }
  const text = marked.slice(words[start]!.from, words[end - 1]!.to);
  return `${start > 0 ? `${ELLIPSIS} ` : ''}${text}${end < words.length ? ` ${ELLIPSIS}` : ''}`;
}
