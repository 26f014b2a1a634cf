export { type ContextMessage, isMessageRef, type MessageContext, messageContext } from './context.ts';
export { CursorError, decodeCursor, encodeCursor } from './cursor.ts';
export {
  COUNT_CAP,
  type MessageHit,
  RELEVANCE_WINDOW,
  SearchInputError,
  type SearchOptions,
  type SearchResult,
  type SortOrder,
  searchMessages,
} from './messages.ts';
export {
  HAS_VALUES,
  MAX_QUERY_LENGTH,
  type ParsedQuery,
  parseQuery,
  prefixLastWord,
  QueryParseError,
  type Ref,
  type TextNode,
} from './parser.ts';
export { suggestWords, type WordSuggestion } from './suggest.ts';
export { type TimelineEntry, type TimelineOptions, userTimeline } from './timeline.ts';
