//! The API's own tables: partners and their keys, and the web pages' sessions (the read models
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
    ],
};
