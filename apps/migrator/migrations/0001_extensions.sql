-- Extensions the schema and the operators rely on.
-- unaccent: accent-insensitive message search ("cafe" finds "café").
-- pg_trgm: did-you-mean suggestions and fuzzy name lookups.
-- amcheck: index verification during restore drills.
create extension if not exists unaccent;
create extension if not exists pg_trgm;
create extension if not exists amcheck;

-- pg_stat_statements only where the server ships it; collecting also needs
-- shared_preload_libraries (see infra/postgres/postgresql.conf).
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_stat_statements') then
    create extension if not exists pg_stat_statements;
  end if;
end
$$;
