//! Every projection muster knows, and `muster project`: each projection with its own consumer
//! group and loop on the runtime's projection worker ([`muster_runtime::projection`]), beside the
//! retention task.

use std::sync::Arc;

use anyhow::Context;
use muster_runtime::projection::{self, Projection};
use muster_runtime::{Env, Workers};

use crate::config::ProjectionsConfig;

/// Every projection muster knows.
pub fn registry() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(crate::realtime::EventRealtime),
        Arc::new(crate::series::EventSeries),
        Arc::new(crate::series::GateSeries),
        Arc::new(crate::alerts::AlertLifecycle),
        Arc::new(crate::service_health::ServiceHealthHistory),
        Arc::new(crate::catalogue::EventCatalogue),
        Arc::new(crate::dead_letter_log::DeadLetterLog),
    ]
}

/// Looks a projection up by name, with the known names in the error.
pub fn find(name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    let all = registry();
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    let known = known.join(", ");
    all.into_iter()
        .find(|p| p.name() == name)
        .with_context(|| format!("no projection named {name:?} (known: {known})"))
}

/// `muster project`: the registry's projections (or `cfg.only`), the retention task and, when
/// `cfg.archive.url` is set, the archive.
pub fn spawn(env: &Env, cfg: ProjectionsConfig) -> Workers {
    let mut workers = Workers::default();
    if cfg.archive.url.is_some() {
        let (env, archive) = (env.clone(), cfg.archive.clone());
        workers.spawn("archive", async move {
            crate::archive::run(&env, archive).await
        });
    }
    let env = env.clone();
    workers.spawn("project", async move { run(&env, cfg).await });
    workers
}

/// Runs the registry's projections (or `cfg.only`) and the retention task.
async fn run(env: &Env, cfg: ProjectionsConfig) -> anyhow::Result<()> {
    let mut all = registry();
    for name in &cfg.only {
        find(name).context("projections.only")?;
    }
    if !cfg.only.is_empty() {
        all.retain(|p| cfg.only.iter().any(|n| n == p.name()));
    }
    let retention = {
        let (retention, change_log, pool, shutdown) = (
            cfg.retention.clone(),
            cfg.change_log_retention,
            env.pool.clone(),
            env.shutdown.clone(),
        );
        tokio::spawn(
            async move { crate::retention::run(retention, change_log, pool, shutdown).await },
        )
    };
    projection::run(env, all, cfg.batches()).await?;
    retention.await.context("the retention task panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_read_model_list_names_every_projection_table() {
        let mut tables: Vec<&str> = registry()
            .iter()
            .flat_map(|p| p.tables().iter().copied())
            .collect();
        tables.sort_unstable();
        let mut listed = muster_schemas::read_models::TABLES.to_vec();
        listed.extend(muster_schemas::read_models::ADMIN_TABLES);
        listed.sort_unstable();
        assert_eq!(tables, listed);
    }

    #[test]
    fn every_change_kind_is_announced_by_exactly_one_projection() {
        use muster_schemas::read_models::ChangeKind;
        let mut announced: Vec<ChangeKind> =
            registry().iter().filter_map(|p| p.announces()).collect();
        announced.sort_by_key(|k| k.as_str());
        let mut all = ChangeKind::ALL.to_vec();
        all.sort_by_key(|k| k.as_str());
        assert_eq!(announced, all);
    }
}
