import type { NatsConnection } from '@nats-io/transport-node';
import type { Sql } from '@spywatcher/db';
import {
  type Auth,
  buildService,
  type Registry,
  type ServiceInstance,
  type ServiceOptions,
} from '@spywatcher/service';
import { registerProjections } from './projections/index.ts';

export interface SearchDeps {
  sql: Sql;
  nats: NatsConnection;
  auth: Auth;
  metrics: Registry;
  logger?: ServiceOptions['logger'];
  loggerInstance?: ServiceOptions['loggerInstance'];
}

/** Builds the search service from its dependencies; no I/O happens here. */
export async function buildApp(deps: SearchDeps): Promise<ServiceInstance> {
  const app = await buildService({
    name: 'search',
    version: '0.1.0',
    description:
      'Read side: Discord-style full-text message search, user timelines and analytics read models.',
    sql: deps.sql,
    nats: deps.nats,
    metrics: deps.metrics,
    auth: deps.auth,
    logger: deps.logger,
    loggerInstance: deps.loggerInstance,
  });
  await registerProjections(app, deps);
  return app;
}
