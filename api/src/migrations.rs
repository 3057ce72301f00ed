//! The API's own tables: partners and their keys (the read models are the projections').

use muster_runtime::migrate::Migrations;

pub static MIGRATIONS: Migrations = Migrations {
    component: "api",
    steps: &["CREATE TABLE partners (
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
            revoked_at timestamptz)"],
};
