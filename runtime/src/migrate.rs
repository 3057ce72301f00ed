//! Forward-only schema migrations, applied once per component under an advisory lock so that
//! several processes starting together do not race.

use anyhow::Context;

/// A component's migrations, in order. Never edit a released one; append a new one.
pub struct Migrations {
    pub component: &'static str,
    pub steps: &'static [&'static str],
}

pub async fn apply(client: &mut tokio_postgres::Client, all: &[&Migrations]) -> anyhow::Result<()> {
    let sets: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|m| {
            (
                m.component.to_owned(),
                m.steps.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    apply_sets(client, &sets).await
}

/// Like [`apply`], for steps built at run time (a projection's DDL with its schema filled in).
/// Each entry is a component and its steps in order.
pub async fn apply_sets(
    client: &mut tokio_postgres::Client,
    all: &[(String, Vec<String>)],
) -> anyhow::Result<()> {
    let tx = client
        .transaction()
        .await
        .context("starting the migration transaction")?;
    tx.execute("SELECT pg_advisory_xact_lock(7010773)", &[])
        .await
        .context("taking the migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS muster_migrations (
            component text NOT NULL,
            version int NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (component, version))",
    )
    .await
    .context("creating muster_migrations")?;
    for (component, steps) in all {
        let done: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM muster_migrations WHERE component = $1",
                &[component],
            )
            .await?
            .get(0);
        for (i, sql) in steps.iter().enumerate().skip(done as usize) {
            let version = i as i32 + 1;
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {component} #{version}"))?;
            tx.execute(
                "INSERT INTO muster_migrations (component, version) VALUES ($1, $2)",
                &[component, &version],
            )
            .await?;
            tracing::info!(component = %component, version, "migration applied");
        }
    }
    tx.commit().await.context("committing migrations")?;
    Ok(())
}
