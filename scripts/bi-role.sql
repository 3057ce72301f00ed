-- A read-only PostgreSQL login for BI tools (Metabase, Superset, Tableau, psql): it reads the
-- projection (read-model) tables and nothing else, and cannot write.
--
--   sudo -u postgres psql -d muster -v role=muster_bi -v password='…' -f scripts/bi-role.sql
--
-- Variables (psql -v):
--   role               the login to create or update (default muster_bi)
--   password           its password; omit it on a re-run to keep the current one. It may be a
--                      SCRAM verifier ('SCRAM-SHA-256$4096:…') so the plain text is never sent.
--   statement_timeout  how long one query may run (default 5min)
--   connection_limit   concurrent connections of the role (default 10)
-- On a re-run, a variable left out keeps the role's current value.
--
-- Run it as a superuser, or as the owner of the muster tables if that role also has CREATEROLE,
-- connected to the muster database. It is idempotent: every run brings the role to exactly the
-- state below, in one transaction, and refuses (changing nothing) if the database would still
-- let the role write or read something outside the list.
--
-- What the role gets:
--   * LOGIN, no other attribute, no role membership; default_transaction_read_only = on,
--     statement_timeout, idle_in_transaction_session_timeout (settings a session could turn
--     off: the real guarantee is the privileges, not the read-only default);
--   * CONNECT on the database, USAGE (not CREATE) on schema public;
--   * SELECT on exactly the tables in `readable` below; every other privilege it held on a table
--     or sequence of schema public is revoked. Never partners, api_keys, services (the sealed
--     credentials of registered services), webhook_* (endpoint secrets, partner payloads),
--     service_status, muster_migrations, the offsets tables, nor dead_letter_log (the admin's:
--     upstreams' raw bodies as they arrived).
--
-- How it survives `muster replay <projection>`: a replay builds the tables in a fresh schema
-- (replay_<name>), then drops the live tables and moves the rebuilt ones into public. The
-- rebuilt tables are new relations, so a plain GRANT on the old ones would be gone; the replay
-- therefore copies every privilege of the live table onto the rebuilt one inside the swap
-- transaction (projections/src/replay.rs), and the role keeps reading without a re-run.
-- Default privileges cannot do this job: they apply to every table a role creates (including
-- sensitive ones a later migration adds), or only in one schema (public, while the rebuilt
-- tables are created in replay_<name>).
--
-- Tables that appear later: patterns in `readable` (insight_% for the analytics read models)
-- cover every table of that name that exists when the script runs; re-run it after a
-- `muster migrate` that adds tables. A new projection's table is added to the list here (the
-- test tests/bi_role.rs fails while a projection table is missing from it); the tables SQL
-- processors declare are read from their catalogue, declared_tables.

\set ON_ERROR_STOP on
\set QUIET on
\if :{?role}
\else
  \set role muster_bi
\endif
-- Not given: what the role has now, or the default for a new role.
\if :{?statement_timeout}
\else
  SELECT coalesce((
      SELECT substr(c, length('statement_timeout=') + 1)
      FROM pg_db_role_setting s
      JOIN pg_roles r ON r.oid = s.setrole
      CROSS JOIN unnest(s.setconfig) c
      WHERE r.rolname = :'role' AND s.setdatabase = 0 AND c LIKE 'statement\_timeout=%'),
    '5min') AS statement_timeout \gset
\endif
\if :{?connection_limit}
\else
  SELECT coalesce((SELECT rolconnlimit FROM pg_roles WHERE rolname = :'role'), 10)
    AS connection_limit \gset
\endif

BEGIN;

-- The one list: table names, or LIKE patterns (with `_` escaped), of schema public.
CREATE TEMP TABLE readable (pattern text PRIMARY KEY) ON COMMIT DROP;
INSERT INTO readable VALUES
  -- the projections (muster_projections::registry(), each Projection::tables())
  ('event\_realtime'),
  ('event\_series\_minute'),
  ('event\_series\_hour'),
  ('gate\_series\_minute'),
  ('gate\_series\_hour'),
  ('alerts'),
  ('service\_health\_history'),
  ('event\_catalogue'),
  -- the analytics read models, present and future
  ('insight\_%');
-- the tables SQL processors declare (`-- table:`), from their catalogue: known only at run
-- time, so re-run the script after a processor with a new table has started once
SELECT to_regclass('public.declared_tables') IS NOT NULL AS has_declared \gset
\if :has_declared
INSERT INTO readable
  SELECT replace(name, '_', '\_') FROM public.declared_tables ON CONFLICT DO NOTHING;
\endif

SELECT format('CREATE ROLE %I', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec

ALTER ROLE :"role" WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT
  CONNECTION LIMIT :connection_limit;
\if :{?password}
ALTER ROLE :"role" WITH PASSWORD :'password';
\endif
ALTER ROLE :"role" SET default_transaction_read_only = on;
ALTER ROLE :"role" SET statement_timeout = :'statement_timeout';
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = '10min';

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
GRANT USAGE ON SCHEMA public TO :"role";
REVOKE CREATE ON SCHEMA public FROM :"role";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"role";

SELECT format('GRANT SELECT ON public.%I TO %I', c.relname, :'role')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relname LIKE ANY (SELECT pattern FROM readable)
ORDER BY c.relname \gexec

-- Refuse (rolling everything back) if the role could still write or read more: privileges can
-- also come from PUBLIC, from role memberships, or from attributes set by hand.
SELECT format('DO $refuse$ BEGIN RAISE EXCEPTION ''%%'', %L; END $refuse$', problem)
FROM (
  SELECT format('role %s has superuser, replication or bypassrls: ALTER ROLE %1$s NOSUPERUSER NOREPLICATION NOBYPASSRLS', rolname) AS problem
  FROM pg_roles WHERE rolname = :'role' AND (rolsuper OR rolreplication OR rolbypassrls)
  UNION ALL
  SELECT format('role %s is a member of %s: REVOKE %2$s FROM %1$s', :'role', g.rolname)
  FROM pg_auth_members m
  JOIN pg_roles g ON g.oid = m.roleid
  JOIN pg_roles u ON u.oid = m.member
  WHERE u.rolname = :'role'
  UNION ALL
  SELECT format('role %s can create objects in schema %s (granted to PUBLIC?): REVOKE CREATE ON SCHEMA %2$s FROM PUBLIC', :'role', n.nspname)
  FROM pg_namespace n
  WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
    AND has_schema_privilege(:'role', n.oid, 'CREATE')
  UNION ALL
  SELECT format('role %s can %s %s.%s (granted to PUBLIC?)', :'role', p.priv, n.nspname, c.relname)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'),
                     ('REFERENCES'), ('TRIGGER')) p(priv)
  WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND has_table_privilege(:'role', c.oid, p.priv)
    AND NOT (p.priv = 'SELECT' AND n.nspname = 'public'
             AND c.relname LIKE ANY (SELECT pattern FROM readable))
) problems \gexec

COMMIT;

SELECT format('role %s reads: %s', :'role', coalesce(string_agg(c.relname, ', ' ORDER BY c.relname), 'nothing yet (run muster migrate first)')) AS "bi-role.sql"
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND has_table_privilege(:'role', c.oid, 'SELECT');
