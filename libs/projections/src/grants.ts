import type { Queryable } from '@spywatcher/db';

/**
 * Grants the privileges other roles hold on table `from` on table `to` as well. A rebuild swaps
 * in tables it created; without this the swap would silently revoke what was granted on the live
 * ones (e.g. SELECT for the read-only role Grafana uses, migration 0160). The names are the
 * projection's own tables, never user input.
 */
/** Grants SELECT on `table` to each of `roles`. */
export async function grantSelect(tx: Queryable, table: string, roles: readonly string[]): Promise<void> {
  for (const role of roles) await tx`grant select on ${tx(table)} to ${tx(role)}`;
}

export async function copyTablePrivileges(tx: Queryable, from: string, to: string): Promise<void> {
  const grants = await tx<{ grantee: string; privilege: string; grantable: boolean }[]>`
    select case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end as grantee,
      a.privilege_type as privilege, a.is_grantable as grantable
    from pg_class c
    cross join lateral aclexplode(c.relacl) a
    left join pg_roles r on r.oid = a.grantee
    where c.oid = ${from}::regclass and a.grantee <> c.relowner
  `;
  for (const g of grants) {
    await tx.unsafe(
      `grant ${g.privilege} on ${to} to ${g.grantee}${g.grantable ? ' with grant option' : ''}`,
    );
  }
}
