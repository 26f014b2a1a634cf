// What globalSetup hands to every test file through vitest's provide/inject.
declare module 'vitest' {
  export interface ProvidedContext {
    /** A migrated database that test files clone (never connect to it directly). */
    templateDatabaseUrl: string;
    natsUrl: string;
    /** The SQL migrations the template database is built from (set in the root vitest.config.ts). */
    migrationsDir: string;
  }
}

export {};
