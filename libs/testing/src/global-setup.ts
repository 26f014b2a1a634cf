import type { TestProject } from 'vitest/node';
import { resolveTestServices } from './services.ts';
import { createTemplateDatabase } from './template.ts';
import './provided.ts';

/**
 * Runs once per `vitest run`: finds PostgreSQL and NATS (env, testcontainers or local),
 * migrates a template database with the migrations the config provides (`migrationsDir`), and hands
 * both to the test files.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await resolveTestServices();
  const template = await createTemplateDatabase(
    services.databaseUrl,
    project.getProvidedContext().migrationsDir,
  );
  project.provide('templateDatabaseUrl', template.url);
  project.provide('natsUrl', services.natsUrl);
  return async () => {
    await template.drop();
    await services.stop();
  };
}
