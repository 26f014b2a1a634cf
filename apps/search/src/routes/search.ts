import type { Sql } from '@spywatcher/db';
import { type Auth, errorResponses, HttpError, type ServiceInstance, Type } from '@spywatcher/service';
import {
  COUNT_CAP,
  MAX_QUERY_LENGTH,
  parseQuery,
  prefixLastWord,
  QueryParseError,
  RELEVANCE_WINDOW,
  SearchInputError,
  searchMessages,
} from '../search/index.ts';

export const SEARCH_SCOPE = 'search:read';

const QUERY_LANGUAGE = `Query language (close to Discord's search box):

| syntax | meaning |
| --- | --- |
| \`deploy failed\` | every word must occur (accents optional: \`cafe\` finds \`café\`) |
| \`node\`, \`console.log\`, \`snake_case\` | an identifier joined by . or _ is found whole and by each part (\`node\` finds node.js, \`console\` finds console.log(x), also inside code) |
| \`"exact phrase"\`, \`"deploy fai*"\` | the words next to each other, in order; a word ending in * is a prefix at its place (any other * in a phrase is refused with 400) |
| \`-spam\`, \`-"free nitro"\` | exclude a word or phrase |
| \`cat OR dog\` | either; OR binds tighter than the space: \`a b OR c\` = a AND (b OR c) |
| \`(cat OR dog) food\` | grouping |
| \`depl*\` | prefix (at least 2 letters or digits before \`*\`) |
| \`from:123456789012345678\`, \`from:<@id>\`, \`from:alice\` | author by id, mention or username (several from: = any of them) |
| \`in:987654321098765432\`, \`in:<#id>\`, \`in:general\` | channel by id, mention or name (several = any) |
| \`guild:112233445566778899\` | guild id |
| \`mentions:alice\`, \`mentions:<@id>\` | messages mentioning that user (several = all) |
| \`has:link\`, \`has:mention\`, \`has:emoji\`, \`has:attachment\`, \`has:code\` | content kind: an http(s) link; a user or role mention, @everyone or @here (not a channel link); a custom or Unicode emoji; an attachment; inline code or a code block (text between two backticks) |
| \`before:2024-05-01\`, \`after:2024-05\`, \`during:2024\`, \`before:2024-05-01T10:00:00Z\` | dates in UTC: before the period starts, after it ends, within it (a timestamp in after: is inclusive) |
| \`is:deleted\` | messages deleted later (needs Discord's message id) |
| \`-from:bot\`, \`-has:link\`, \`-is:deleted\` | a filter preceded by - excludes |

A query may be filters only (\`from:alice has:link\`). Filters cannot appear inside ( ) or next to OR.
A malformed query answers 400 \`INVALID_QUERY\` with \`details.position\` (0-based) and \`details.expected\`.`;

const Hit = Type.Object({
  id: Type.String({ format: 'uuid', description: 'event id' }),
  messageId: Type.Union([Type.String(), Type.Null()], {
    description: "Discord's message id (null for legacy rows)",
  }),
  occurredAt: Type.String({
    description: 'when it was sent, UTC with microseconds',
    examples: ['2024-05-17T10:21:07.123456Z'],
  }),
  userId: Type.String(),
  username: Type.String(),
  channelId: Type.String(),
  channelName: Type.String(),
  guildId: Type.String(),
  content: Type.String({ description: 'the message as sent (raw Discord markup)' }),
  attachmentCount: Type.Integer(),
  snippet: Type.String({
    description:
      'HTML-escaped excerpt with every match in <mark>…</mark>: from a word boundary up to 6 words before the first match (short words kept) to 30 words or 240 characters, "…" where text is left out; excluded words are not marked; computed for the returned page only',
    examples: ['… so the <mark>deploy</mark> failed again on staging'],
  }),
  deleted: Type.Boolean({ description: 'the message was deleted later (a deleted_message event names it)' }),
  score: Type.Optional(
    Type.Number({ description: 'relevance (ts_rank, length-normalised); only with sort=relevance' }),
  ),
});

const SearchResponse = Type.Object({
  results: Type.Array(Hit),
  total: Type.Union(
    [
      Type.Object({
        count: Type.Integer({ description: `exact up to ${COUNT_CAP}` }),
        capped: Type.Boolean({ description: `true when more than ${COUNT_CAP} messages match` }),
        display: Type.String({ examples: ['37', `${COUNT_CAP}+`] }),
      }),
      Type.Null(),
    ],
    { description: 'matches of the whole query (not just this page); null when count=false' },
  ),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'pass as cursor= for the next page; null on the last page',
  }),
  didYouMean: Type.Union(
    [
      Type.Object({
        query: Type.String({ examples: ['deploy failed'] }),
        words: Type.Array(
          Type.Object({
            word: Type.String({ examples: ['deplyo'] }),
            position: Type.Integer(),
            suggestions: Type.Array(Type.String(), { examples: [['deploy', 'deploys']] }),
          }),
        ),
      }),
      Type.Null(),
    ],
    { description: 'when nothing matches: close words that do occur in messages' },
  ),
});

export function searchRoutes(app: ServiceInstance, deps: { sql: Sql; auth: Auth }): void {
  app.get(
    '/v1/search/messages',
    {
      config: { scope: SEARCH_SCOPE },
      schema: {
        tags: ['search'],
        summary: 'Search messages',
        description: `Full-text search over every stored message, newest first or by relevance, with keyset
paging and no page limit. Needs a token with the \`${SEARCH_SCOPE}\` scope.

${QUERY_LANGUAGE}

With \`sort=relevance\` the newest ${RELEVANCE_WINDOW} matches are ranked at a time (then the next ${RELEVANCE_WINDOW} older ones, and so on),
so the cost of a page never depends on how common the words are.`,
        querystring: Type.Object({
          q: Type.String({
            minLength: 1,
            maxLength: MAX_QUERY_LENGTH,
            description: 'the query (see the table above)',
            examples: [
              'deploy failed',
              '"merge conflict" from:alice',
              'cafe OR coffee -starbucks',
              'in:general during:2024-05 has:link',
              'mentions:<@123456789012345678> is:deleted',
              'depl*',
            ],
          }),
          sort: Type.Union([Type.Literal('newest'), Type.Literal('relevance')], {
            default: 'newest',
            examples: ['relevance'],
            description: 'newest first, or best match first (queries without words fall back to newest)',
          }),
          limit: Type.Integer({
            minimum: 1,
            maximum: 100,
            default: 25,
            description: 'results per page',
            examples: [50],
          }),
          cursor: Type.Optional(
            Type.String({
              maxLength: 1024,
              description: 'nextCursor of the previous page (same q and sort)',
              examples: [
                'eyJrIjoibmV3IiwidCI6IjIwMjQtMDUtMTdUMTA6MjE6MDcuMTIzNDU2WiIsImkiOiIwMTkwZjNhMi04YzRlLTdkMjEtOWI3YS0zZjVlMmMxZDBhOWIifQ',
              ],
            }),
          ),
          asYouType: Type.Boolean({
            default: false,
            examples: [true],
            description:
              'search as you type: the token the query ends with also matches as a prefix once its last word has 3 letters or digits — a word (`deploy fai` = `deploy fai*`), an excluded word (`-spa` = `-spa*`), the last word of a phrase whose quote is still open (`"deploy fai` = `"deploy fai*"`) or of an open group (`(cat OR dog` = `(cat OR dog*)`); a quote or group left open at the end is closed. Nothing is a prefix after a space, `)` or closing quote, in a filter value (taken as typed) or before the end; an unfinished `-`, `OR` or filter is still a 400',
          }),
          count: Type.Boolean({ default: true, description: `count matches (exact up to ${COUNT_CAP})` }),
        }),
        response: { 200: SearchResponse, ...errorResponses(400, 401, 403, 500, 503) },
      },
    },
    async (request) => {
      const { q, sort, limit, cursor, asYouType, count } = request.query;
      try {
        let parsed = parseQuery(q, { asYouType });
        if (asYouType) parsed = prefixLastWord(parsed, q);
        return await searchMessages(deps.sql, parsed, { sort, limit, cursor, count }, q);
      } catch (error) {
        if (error instanceof QueryParseError) {
          throw new HttpError(400, 'INVALID_QUERY', `q: invalid query: ${error.message}`, {
            parameter: 'q',
            position: error.position,
            expected: error.expected,
          });
        }
        if (error instanceof SearchInputError) {
          throw new HttpError(
            400,
            error.position === undefined ? 'INVALID_CURSOR' : 'INVALID_QUERY',
            // Cursor messages start with "cursor"; query messages are named here.
            error.position === undefined ? error.message : `q: ${error.message}`,
            error.position === undefined
              ? { parameter: 'cursor' }
              : { parameter: 'q', position: error.position, expected: error.expected },
          );
        }
        throw error;
      }
    },
  );
}
