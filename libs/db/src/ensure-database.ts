import { createSql, databaseNameOf, withDatabase } from './client.ts';

/** The database PostgreSQL clusters always have; used only to create another one. */
const MAINTENANCE_DATABASE = 'postgres';

function codeOf(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/**
 * Creates the database `url` names when it does not exist yet (connecting to the server's
 * `postgres` database to issue CREATE DATABASE). Returns true when it created it. Any other
 * failure (server down, login refused) is thrown as is, for the caller to explain.
 */
export async function ensureDatabase(url: string, applicationName: string): Promise<boolean> {
  const target = createSql({ url, applicationName, max: 1, connectTimeoutS: 5 });
  try {
    await target`select 1`;
    return false;
  } catch (error) {
    if (codeOf(error) !== '3D000') throw error;
  } finally {
    await target.end({ timeout: 5 });
  }
  const admin = createSql({
    url: withDatabase(url, MAINTENANCE_DATABASE),
    applicationName,
    max: 1,
    connectTimeoutS: 5,
  });
  try {
    await admin`create database ${admin(databaseNameOf(url))}`;
    return true;
  } catch (error) {
    // Another process created it in the meantime: it exists, which is all we need.
    if (codeOf(error) === '42P04') return false;
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }
}
