-- History of the repeatable migrations (repeatable/R__<name>.sql): one row each time a file is
-- applied, so the latest row of a name holds the checksum the database runs. See
-- apps/migrator/README.md, "Repeatable migrations".
create table schema_repeatable_migrations (
  id bigint generated always as identity primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now(),
  duration_ms integer not null,
  applied_by text not null
);
create index schema_repeatable_migrations_name on schema_repeatable_migrations (name, id);
