import { randomBytes } from 'node:crypto';
import { createSql, migrate, withDatabase } from '@spywatcher/db';

/** Creates an empty database on the server of `adminUrl` and returns its URL and a drop function. */
export async function createEmptyDatabase(
  adminUrl: string,
  prefix = 'sw_test',
  template?: string,
): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = createSql({ url: adminUrl, applicationName: 'spywatcher-tests', max: 1 });
  try {
    await (template
      ? admin`create database ${admin(name)} template ${admin(template)}`
      : admin`create database ${admin(name)}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    drop: async () => {
      const a = createSql({ url: adminUrl, applicationName: 'spywatcher-tests', max: 1 });
      try {
        await a`drop database if exists ${a(name)} with (force)`;
      } finally {
        await a.end();
      }
    },
  };
}

/** A database migrated with the migrations in `migrationsDir`, used as the template every test file clones. */
export async function createTemplateDatabase(adminUrl: string, migrationsDir: string) {
  const db = await createEmptyDatabase(adminUrl, 'sw_tpl');
  const sql = createSql({ url: db.url, applicationName: 'spywatcher-tests', max: 2 });
  try {
    await migrate({ sql, dir: migrationsDir });
  } finally {
    await sql.end();
  }
  return db;
}
