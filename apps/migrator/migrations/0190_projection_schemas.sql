-- The version each projection's read-model tables were built at. A projection owns its tables
-- (libs/projections): their shape is declared in code, and when the declared version or shape
-- differs from the database the projection runner rebuilds them from the log into fresh tables
-- and swaps them in, so a change to a read model's schema is a rebuild, not a migration.
-- Tables without a row here (those migrations 0030-0091 made) are adopted when their shape is
-- the declared one.
create table projection_schemas (
  projection text primary key,
  version integer not null,
  updated_at timestamptz not null default now()
);
