export type { PauseReply, PauseRequest, ReplayReply, ReplayReport, ReplayRequest } from './control.ts';
export { createEvent } from './event.ts';
export { EVENT_TYPES, type EventType, eventTable, isEventType } from './event-types.ts';
export { inspectJson, type JsonLimits, type JsonProblem, stringProblem } from './json-inspect.ts';
export { type DecodedPayload, decodeEventPayload } from './payload.ts';
export {
  createPublisher,
  PublishError,
  type Publisher,
  type PublisherOptions,
  type PublisherStats,
  type PublishFailure,
  type PublishResult,
} from './publisher.ts';
export { EVENT_COLUMNS, type EventRowValue, eventRow, eventRowGroups, rowToEvent } from './rows.ts';
export {
  CLIENTS,
  CONTENT_MAX_CHARS,
  DeletedMessageData,
  DeletedMessageEvent,
  EVENT_DATA_SCHEMAS,
  EVENT_SCHEMAS,
  type EventByType,
  type EventData,
  EventId,
  JoinData,
  JoinEvent,
  METADATA_MAX_BYTES,
  METADATA_MAX_DEPTH,
  METADATA_MAX_KEYS,
  MessageData,
  MessageEvent,
  Metadata,
  OccurredAt,
  PresenceData,
  PresenceEvent,
  ReactionTimeData,
  ReactionTimeEvent,
  RoleChangeData,
  RoleChangeEvent,
  Snowflake,
  type SpywatcherEvent,
  SpywatcherEventSchema,
  STATUSES,
  TypingData,
  TypingEvent,
} from './schemas.ts';
export {
  deadLetterStreamName,
  type EventStreamOptions,
  ensureDeadLetterStream,
  ensureEventStream,
  StreamReplicasError,
} from './stream.ts';
export { DEFAULT_NATS_NAMES, type NatsNames, subjects } from './subjects.ts';
export { uuidv7, uuidv7Time } from './uuid.ts';
export {
  describeErrors,
  EARLIEST_OCCURRED_AT,
  type EventErrorCode,
  type EventFieldError,
  MAX_FUTURE_SKEW_MS,
  type ValidationResult,
  validateEvent,
} from './validate.ts';
