-- spywatcher_grafana: the read-only role Grafana's PostgreSQL datasource logs in as
-- (infra/grafana/provisioning/datasources). It may read the analytics read models and nothing
-- else: no event tables (message content), no reference tables (tokens), no writes.
--
-- Roles belong to the server, grants to each database: the role is created once (a second
-- database migrating at the same time finds it there) and every migrated database grants it
-- SELECT on its read models. It has no password: under trust authentication (the compose
-- network) it logs in as is; anywhere else set one (ALTER ROLE spywatcher_grafana PASSWORD ...)
-- and give it to Grafana as GRAFANA_DB_PASSWORD. A rebuild keeps these grants (it copies the
-- live table's privileges to the rebuilt one at the swap). A new read model grants SELECT in
-- its own migration.

-- Every transaction read-only beside the grants, and no dashboard query runs away. Set with the
-- creation: a concurrent ALTER ROLE from another database's migration could fail on the row.
do $$
begin
  create role spywatcher_grafana login connection limit 10;
  alter role spywatcher_grafana set default_transaction_read_only = on;
  alter role spywatcher_grafana set statement_timeout = '10s';
exception
  when duplicate_object or unique_violation then null;
end
$$;

do $$
declare
  t record;
begin
  for t in
    select c.relname from pg_class c
    where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p')
      and c.relname like 'rm\_%' and c.relname not like '%\_\_%'
  loop
    execute format('grant select on %I to spywatcher_grafana', t.relname);
  end loop;
end
$$;
