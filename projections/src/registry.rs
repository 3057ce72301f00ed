//! Every projection muster knows, and `muster project`: each projection with its own consumer
//! group and loop on the runtime's projection worker ([`muster_runtime::projection`]), beside the
//! retention task.

use std::sync::Arc;

use anyhow::Context;
use muster_runtime::projection::{self, Projection};
use muster_runtime::{Env, Workers};

use crate::config::ProjectionsConfig;
use muster_processors::ProcessorsConfig;

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

/// The registry's projections and one per table the SQL processors declare (`-- table:`).
pub fn all(processors: &ProcessorsConfig) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    let mut all = registry();
    all.extend(
        crate::declared::load(processors)?
            .into_iter()
            .map(|t| t as Arc<dyn Projection>),
    );
    Ok(all)
}

/// Looks a projection of the registry up by name.
pub fn find(name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    find_in(registry(), name)
}

/// Looks a projection up by name among `all`, with the known names in the error.
pub fn find_in(all: Vec<Arc<dyn Projection>>, name: &str) -> anyhow::Result<Arc<dyn Projection>> {
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    let known = known.join(", ");
    all.into_iter()
        .find(|p| p.name() == name)
        .with_context(|| format!("no projection named {name:?} (known: {known})"))
}

/// `muster project`: the registry's projections and the declared tables of `processors` (or
/// `cfg.only`), the retention task and, when `cfg.archive.url` is set, the archive.
pub fn spawn(env: &Env, cfg: ProjectionsConfig, processors: &ProcessorsConfig) -> Workers {
    let mut workers = Workers::default();
    if cfg.archive.url.is_some() {
        let (env, archive) = (env.clone(), cfg.archive.clone());
        workers.spawn("archive", async move {
            crate::archive::run(&env, archive).await
        });
    }
    let (env, processors) = (env.clone(), processors.clone());
    workers.spawn("project", async move { run(&env, cfg, &processors).await });
    workers
}

/// Runs the projections (or `cfg.only`) and the retention task.
async fn run(
    env: &Env,
    cfg: ProjectionsConfig,
    processors: &ProcessorsConfig,
) -> anyhow::Result<()> {
    let declared = crate::declared::load(processors)?;
    let pruned: Vec<(&'static str, String)> =
        declared.iter().filter_map(|t| t.retention()).collect();
    let mut all = registry();
    all.extend(declared.into_iter().map(|t| t as Arc<dyn Projection>));
    for name in &cfg.only {
        find_in(all.clone(), name).context("projections.only")?;
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
        tokio::spawn(async move {
            crate::retention::run(retention, &pruned, change_log, pool, shutdown).await
        })
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
