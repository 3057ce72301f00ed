//! Which workers a process runs: each role is one stage crate's `spawn`, with the port of its
//! ops endpoint and its migrations. `muster all` runs every role.

use std::net::SocketAddr;

use anyhow::Context;
use muster_runtime::migrate::Migrations;
use muster_runtime::{Env, Workers, ops};

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Process,
    Project,
    Api,
    Webhooks,
    Insights,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Ingest,
        Role::Process,
        Role::Project,
        Role::Api,
        Role::Webhooks,
        Role::Insights,
    ];

    /// Where `/healthz`, `/readyz` and `/metrics` listen when `ops.addr` is unset; `None` for
    /// the API, which serves them beside its own routes.
    pub fn default_ops_port(self) -> Option<u16> {
        match self {
            Role::Ingest => Some(9181),
            Role::Process => Some(9182),
            Role::Project => Some(9183),
            Role::Webhooks => Some(9184),
            Role::Insights => Some(9185),
            Role::Api => None,
        }
    }

    /// The component migrations of the role's crate (the projections add their own per
    /// projection, see [`migrate`]).
    fn migrations(self) -> Option<&'static Migrations> {
        match self {
            Role::Ingest => Some(&muster_ingest::MIGRATIONS),
            Role::Api => Some(&muster_api::MIGRATIONS),
            Role::Webhooks => Some(&muster_webhooks::MIGRATIONS),
            Role::Insights => Some(&muster_analytics::insights::tables::MIGRATIONS),
            Role::Process | Role::Project => None,
        }
    }

    pub fn spawn(self, env: &Env, cfg: &Config) -> Workers {
        let archive_url = cfg.projections.archive.url.clone();
        match self {
            Role::Ingest => muster_ingest::spawn(env, cfg.ingest.clone()),
            Role::Process => muster_processors::spawn(env, cfg.processors.clone()),
            Role::Project => {
                muster_projections::spawn(env, cfg.projections.clone(), &cfg.processors)
            }
            Role::Webhooks => {
                muster_webhooks::spawn(env, cfg.webhooks.clone(), cfg.projections.batches())
            }
            Role::Insights => {
                muster_analytics::insights::job::spawn(env, cfg.insights.clone(), archive_url)
            }
            Role::Api => {
                let (env, cfg) = (env.clone(), cfg.clone());
                Workers::one("api", async move {
                    let state = crate::app_state(&cfg, &env).await?;
                    let mut api = cfg.api.clone();
                    api.flight.archive_url = archive_url;
                    muster_api::run(api, state, env.shutdown.clone()).await
                })
            }
        }
    }
}

/// Every component's migrations, whichever roles run: any process may be the first. The
/// tables the SQL processors of `processors` declare are created or migrated too.
pub async fn migrate(
    pool: &deadpool_postgres::Pool,
    processors: &muster_processors::ProcessorsConfig,
) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .await
        .context("connecting to PostgreSQL (is it running? see scripts/services.sh)")?;
    let all: Vec<&Migrations> = Role::ALL.iter().filter_map(|r| r.migrations()).collect();
    muster_runtime::migrate::apply(&mut client, &all).await?;
    muster_projections::migrate(&mut client).await?;
    muster_projections::migrate_declared(&mut client, processors).await
}

/// Runs the workers of `roles` until SIGTERM, or until one fails.
pub async fn run(roles: &[Role], cfg: Config) -> anyhow::Result<()> {
    let env = cfg.env(muster_runtime::shutdown::on_signals())?;
    migrate(&env.pool, &cfg.processors).await?;
    // `/readyz` names PostgreSQL or Kafka when either is down, in every role.
    muster_runtime::probe::spawn(
        env.health.clone(),
        env.pool.clone(),
        &env.kafka,
        std::time::Duration::from_secs(2),
        env.shutdown.clone(),
    )?;
    let mut workers = Workers::default();
    if let Some(port) = ops_port(roles) {
        let addr = cfg
            .ops
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
        let (health, metrics, stop) = (
            env.health.clone(),
            env.metrics.clone(),
            env.shutdown.clone(),
        );
        workers.spawn("ops endpoint", ops::serve(addr, health, metrics, stop));
    }
    for role in roles {
        workers.add(role.spawn(&env, &cfg));
    }
    workers.wait(env.shutdown).await
}

/// The first role's default ops port, unless one of the roles serves the ops routes itself.
fn ops_port(roles: &[Role]) -> Option<u16> {
    let ports: Option<Vec<u16>> = roles.iter().map(|r| r.default_ops_port()).collect();
    ports?.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ops_endpoint_per_process_unless_the_api_serves_it() {
        assert_eq!(ops_port(&[Role::Ingest]), Some(9181));
        assert_eq!(ops_port(&[Role::Insights]), Some(9185));
        assert_eq!(ops_port(&[Role::Api]), None);
        assert_eq!(ops_port(&Role::ALL), None);
    }
}
