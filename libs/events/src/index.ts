export { DEFAULT_NATS_NAMES, type NatsNames, subjects } from './subjects.ts';
export { uuidv7, uuidv7Time } from './uuid.ts';
