import { fileURLToPath } from 'node:url';

/** Absolute path of the SQL migrations this app ships (`@spywatcher/migrator/migrations`). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));
