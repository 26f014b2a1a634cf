export { Type } from 'typebox';
export { hasScope, installAccessControl } from './access.ts';
export { type Auth, createAuth, type Principal, parseTokenGrants, type TokenGrant } from './auth.ts';
export { ConfigError, type ConfigOf, commonEnv, env, loadConfig, type VarSpec } from './config.ts';
export {
  DATABASE_RETRY_AFTER_S,
  type ErrorBody,
  errorResponseSchema,
  HttpError,
  httpErrors,
  installErrorHandling,
  isDatabaseUnavailable,
} from './errors.ts';
export { createLogger, type LogFormat, type LoggerOptions, wantsPretty } from './logger.ts';
export {
  Counter,
  createMetricsRegistry,
  Gauge,
  Histogram,
  instrumentHttp,
  oncePerScrape,
  Registry,
} from './metrics.ts';
export { type NatsSettings, natsConnectionOptions, redactServers } from './nats-auth.ts';
export {
  natsCheck,
  postgresCheck,
  type ReadinessCheck,
  type ReadinessDetails,
  registerDependencyMetrics,
  standbyCheck,
  withTimeout,
} from './readiness.ts';
export { type RunOptions, runService } from './run.ts';
export {
  buildService,
  errorResponses,
  loggerOptions,
  REDACT_PATHS,
  type ServiceInstance,
  type ServiceOptions,
} from './service.ts';
export { type CommonConfig, type ServiceRuntime, type StartOptions, startService } from './start.ts';
