import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSql, migrate } from '@spywatcher/db';
import { adminDatabaseUrl, createEmptyDatabase } from '@spywatcher/testing';
import { expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../src/migrations-dir.ts';

it('0100 registers every stored id once and lists rows that shared an id, keeping them', async () => {
  const db = await createEmptyDatabase(adminDatabaseUrl(), 'sw_mig_ids');
  const sql = createSql({ url: db.url, applicationName: 'migrate-test', max: 2 });
  const dir = await mkdtemp(join(tmpdir(), 'sw-migrations-'));
  const later = await mkdtemp(join(tmpdir(), 'sw-migrations-later-'));
  try {
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    // Everything from 0100 on waits (the repeatable migrations too: they define today's
    // functions), so rows can be written the way they were before it.
    for (const f of await readdir(dir)) {
      if (f >= '0100') {
        await cp(join(dir, f), join(later, f), { recursive: true });
        await rm(join(dir, f), { recursive: true });
      }
    }
    await migrate({ sql, dir });
    const shared = '01936f0e-8a5c-7c4e-9d5e-1b2c3d4e5f60';
    const single = '01936f0e-8a5c-7c4e-9d5e-1b2c3d4e5f61';
    for (const at of ['2026-01-05T00:00:00Z', '2026-03-05T00:00:00Z']) {
      await sql`select sw_ensure_partition('typing_events', ${at}::timestamptz)`;
      await sql`select sw_ensure_partition('join_events', ${at}::timestamptz)`;
    }
    await sql`
      insert into typing_events (id, occurred_at, recorded_at, user_id, username, channel_id, channel_name, guild_id)
      values (${shared}, '2026-01-05T00:00:00Z', '2026-01-05T00:00:01Z', '1', 'u', '2', 'c', '3'),
             (${shared}, '2026-03-05T00:00:00Z', '2026-03-05T00:00:01Z', '1', 'u', '2', 'c', '3'),
             (${single}, '2026-03-05T00:00:00Z', '2026-03-05T00:00:01Z', '1', 'u', '2', 'c', '3')`;
    await sql`
      insert into join_events (id, occurred_at, recorded_at, user_id, username, guild_id, account_age_days)
      values (${shared}, '2026-01-05T00:00:00Z', '2026-02-01T00:00:00Z', '1', 'u', '3', 4)`;
    for (const f of await readdir(later)) await cp(join(later, f), join(dir, f), { recursive: true });
    await migrate({ sql, dir });

    const ids = await sql`select id::text, type, occurred_at from event_ids order by id`;
    expect(ids.map((r) => [r.id, r.type, r.occurred_at.toISOString()])).toEqual([
      [shared, 'typing', '2026-01-05T00:00:00.000Z'],
      [single, 'typing', '2026-03-05T00:00:00.000Z'],
    ]);
    const collisions = await sql`select id::text, type, occurred_at from event_id_collisions order by type`;
    expect(collisions.map((r) => [r.id, r.type, r.occurred_at.toISOString()])).toEqual([
      [shared, 'join', '2026-01-05T00:00:00.000Z'],
      [shared, 'typing', '2026-03-05T00:00:00.000Z'],
    ]);
    const [kept] =
      await sql`select (select count(*) from typing_events)::int + (select count(*) from join_events)::int as n`;
    expect(kept!.n).toBe(4);
    // From now on a new row registers its id, and a second row for it is refused.
    await sql`
      insert into join_events (id, occurred_at, user_id, username, guild_id, account_age_days)
      values ('01936f0e-8a5c-7c4e-9d5e-1b2c3d4e5f62', '2026-03-05T00:00:00Z', '1', 'u', '3', 4)`;
    expect(
      (await sql`select type from event_ids where id = '01936f0e-8a5c-7c4e-9d5e-1b2c3d4e5f62'`)[0]!.type,
    ).toBe('join');
    await expect(
      sql`insert into join_events (id, occurred_at, user_id, username, guild_id, account_age_days)
          values (${single}, '2026-01-05T00:00:00Z', '1', 'u', '3', 4)`,
    ).rejects.toMatchObject({ code: '23505' });
  } finally {
    await sql.end();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
    await rm(later, { recursive: true, force: true });
  }
});
