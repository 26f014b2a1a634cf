import type { Queryable } from '@spywatcher/db';

export interface WordSuggestion {
  /** the word as typed */
  word: string;
  /** where it starts in the query */
  position: number;
  /** close words that occur in some message, best first */
  suggestions: string[];
}

/**
 * Did-you-mean: for each typed word whose normalised form occurs in no message, the closest
 * words of the vocabulary (search_terms, kept by a trigger on message_events) by trigram
 * similarity. One statement for all words; the trigram GIN index keeps it to a few ms.
 */
export async function suggestWords(
  sql: Queryable,
  words: { text: string; position: number }[],
  perWord = 3,
): Promise<WordSuggestion[]> {
  if (words.length === 0) return [];
  const rows = await sql<{ ord: string; suggestions: string[] }[]>`
    select w.ord::text as ord, coalesce(array_agg(s.term order by s.sim desc, s.term)
      filter (where s.term is not null), '{}') as suggestions
    from unnest(${words.map((w) => w.text)}::text[]) with ordinality as w(word, ord)
    cross join lateral unnest(tsvector_to_array(sw_message_tsv(w.word))) as lex
    left join lateral (
      select t.term, similarity(t.term, lex) as sim
      from search_terms t
      where t.term % lex
      order by sim desc, t.term
      limit ${perWord}
    ) s on true
    where not exists (select 1 from search_terms k where k.term = lex)
    group by w.ord, lex
    order by w.ord`;
  const byWord = new Map<number, string[]>();
  for (const r of rows) {
    const i = Number(r.ord) - 1;
    byWord.set(i, [...(byWord.get(i) ?? []), ...r.suggestions]);
  }
  return [...byWord.entries()].map(([i, suggestions]) => ({
    word: words[i]!.text,
    position: words[i]!.position,
    suggestions: [...new Set(suggestions)].slice(0, perWord),
  }));
}
