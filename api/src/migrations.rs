//! The API's own tables: partners and their keys, the web pages' sessions and the audit log (the read models
//! are the projections').

use muster_runtime::migrate::Migrations;

pub static MIGRATIONS: Migrations = Migrations {
    component: "api",
    steps: &[
        "CREATE TABLE partners (
            partner_id text PRIMARY KEY,
            name text NOT NULL,
            tier text NOT NULL CHECK (tier IN ('partner', 'premium')),
            event_ids text[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz);
         CREATE TABLE api_keys (
            key_hash bytea PRIMARY KEY,
            partner_id text NOT NULL REFERENCES partners ON DELETE CASCADE,
            key_prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz)",
        // A web session by the hash of its cookie, with the hash of the credential it was
        // opened with (checked again on every request) and its forms' CSRF token.
        "CREATE TABLE web_sessions (
            session_hash bytea PRIMARY KEY,
            credential_kind text NOT NULL CHECK (credential_kind IN ('admin', 'key')),
            credential_hash bytea NOT NULL,
            csrf_token text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL);
         CREATE INDEX web_sessions_expiry ON web_sessions (expires_at)",
        // The audit log (`crate::audit`): the admin's actions have no partner; a partner's
        // carry the prefix of the key it used.
        "CREATE TABLE audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            actor_partner_id text,
            actor_key_prefix text,
            action text NOT NULL,
            subject text NOT NULL,
            details jsonb NOT NULL DEFAULT '{}');
         CREATE INDEX audit_log_action ON audit_log (action, id);
         CREATE INDEX audit_log_actor ON audit_log (actor_partner_id, id);
         CREATE INDEX audit_log_at ON audit_log (at)",
        // Every change to keys or partners wakes each `muster api` process's listener
        // (`crate::auth::KEYS_CHANNEL`), which reloads its in-memory keys: a revocation
        // reaches every process at commit, whichever route or tool wrote it.
        "CREATE FUNCTION muster_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_notify('muster_keys', ''); RETURN NULL; END $$;
         CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION muster_keys_changed();
         CREATE TRIGGER partners_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
            ON partners FOR EACH STATEMENT EXECUTE FUNCTION muster_keys_changed()",
    ],
};
