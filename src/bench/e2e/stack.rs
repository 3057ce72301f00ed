//! The run's own pipeline: a fresh database, topics and consumer groups under the run's prefix,
//! and muster's workers and the simulator as child processes on loopback, each with its own
//! CPU. Everything is removed again at the end, whatever happened: the processes are killed
//! when dropped, [`Stack::remove`] drops the database and deletes the topics and groups.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

use crate::config::Config;

/// What names the run's data: `e2e_<run>` in the database's name, `e2e-<run>.` before its
/// topics, `e2e-<run>` before its consumer groups.
pub struct Names {
    pub run: String,
}

impl Names {
    pub fn new() -> Self {
        Self {
            run: format!("{:08x}", rand::random::<u32>()),
        }
    }

    pub fn topic_prefix(&self) -> String {
        format!("e2e-{}.", self.run)
    }

    pub fn group_prefix(&self) -> String {
        format!("e2e-{}", self.run)
    }

    /// `url` with its database replaced by `<database>_e2e_<run>`.
    pub fn database_url(&self, url: &str) -> anyhow::Result<(String, String)> {
        let (server, rest) = url
            .rsplit_once('/')
            .filter(|(server, _)| server.contains("://") && !server.ends_with('/'))
            .context("database.url names no database")?;
        let (db, query) = rest.split_once('?').unwrap_or((rest, ""));
        let name = format!("{db}_e2e_{}", self.run);
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Ok((format!("{server}/{name}{query}"), name))
    }
}

/// A child process, killed when dropped; its standard error goes to a log file of the run.
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// `muster <args>` with this command line's configuration (what came before `bench`) and
    /// `env`.
    pub fn muster(
        name: &'static str,
        args: &[&str],
        env: &[(&str, String)],
        logs: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let before_bench: Vec<String> = std::env::args()
            .skip(1)
            .take_while(|a| a != "bench")
            .collect();
        let log = logs.join(format!("{name}.log"));
        let child = Command::new(std::env::current_exe()?)
            .args(&before_bench)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("MUSTER_LOG", "warn,rdkafka=error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting muster {name}"))?;
        Ok(Self { name, child, log })
    }

    /// Waits until `url` answers 2xx; fails with the log's tail when the process stops first.
    pub async fn ready(&mut self, url: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            self.alive()?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "muster {} did not get ready; its log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An error with the log's tail when the process has stopped.
    pub fn alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "muster {} stopped ({status}); its log:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A free loopback port below Linux's ephemeral range, so no outgoing connection takes it
/// between here and the worker's bind.
pub fn free_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The run's database, topics and groups.
pub struct Stack {
    pub names: Names,
    /// The bench's configuration pointed at the run's database and topics.
    pub cfg: Config,
    /// `postgres` on the same server, to create and drop the run's database.
    admin_db: tokio_postgres::Config,
    database: String,
}

impl Stack {
    /// Creates the run's database (migrated) and points `cfg` at it and at the run's topics.
    pub async fn create(mut cfg: Config) -> anyhow::Result<Self> {
        let names = Names::new();
        let (url, database) = names.database_url(&cfg.database.url)?;
        let mut admin_db = cfg.database.connection()?;
        admin_db.dbname("postgres");
        let stack_cfg = {
            cfg.database.url = url;
            cfg.kafka.topic_prefix = names.topic_prefix();
            cfg.kafka.group_prefix = names.group_prefix();
            cfg
        };
        let stack = Self {
            names,
            cfg: stack_cfg,
            admin_db,
            database,
        };
        stack
            .admin(&format!(
                // A UTF-8 ctype whatever the cluster's default: search needs it (pg_trgm).
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'",
                stack.database
            ))
            .await
            .context("creating the run's database")?;
        let pool = stack.cfg.database.pool()?;
        crate::roles::migrate(&pool, &stack.cfg.processors).await?;
        Ok(stack)
    }

    /// What every worker of the run is started with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MUSTER_DATABASE_URL", self.cfg.database.url.clone()),
            ("MUSTER__KAFKA__TOPIC_PREFIX", self.names.topic_prefix()),
            ("MUSTER__KAFKA__GROUP_PREFIX", self.names.group_prefix()),
            // As the bench itself: its throwaway data needs no secret key of its own.
            ("MUSTER_DEVELOPMENT", "true".into()),
        ]
    }

    async fn admin(&self, statement: &str) -> anyhow::Result<()> {
        let (client, connection) = self.admin_db.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        client.batch_execute(statement).await?;
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Drops the run's database and deletes its topics and consumer groups (the processes
    /// must be gone). Every step is tried; the first failure is returned.
    pub async fn remove(&self) -> anyhow::Result<()> {
        let db = self
            .admin(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .await
            .context("dropping the run's database");
        let kafka = self.remove_from_kafka().await;
        db.and(kafka)
    }

    async fn remove_from_kafka(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.cfg.kafka.client().create()?;
        let timeout = Duration::from_secs(10);
        let meta = admin
            .inner()
            .fetch_metadata(None, timeout)
            .context("listing the run's topics")?;
        let prefix = self.names.topic_prefix();
        let topics: Vec<&str> = meta
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|t| t.starts_with(&prefix))
            .collect();
        if !topics.is_empty() {
            admin
                .delete_topics(&topics, &AdminOptions::new())
                .await
                .context("deleting the run's topics")?;
        }
        let groups = admin
            .inner()
            .fetch_group_list(None, timeout)
            .context("listing the run's consumer groups")?;
        let prefix = self.names.group_prefix();
        let groups: Vec<&str> = groups
            .groups()
            .iter()
            .map(|g| g.name())
            .filter(|g| g.starts_with(&prefix))
            .collect();
        if !groups.is_empty() {
            // A static member's group stays non-empty until its session times out: those are
            // left for the broker to expire with their offsets.
            let _ = admin.delete_groups(&groups, &AdminOptions::new()).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_has_a_database_of_its_own_on_the_same_server() {
        let names = Names {
            run: "0badcafe".into(),
        };
        assert_eq!(
            names
                .database_url("postgres://m:p@127.0.0.1:5432/muster")
                .unwrap(),
            (
                "postgres://m:p@127.0.0.1:5432/muster_e2e_0badcafe".into(),
                "muster_e2e_0badcafe".into()
            )
        );
        assert_eq!(
            names
                .database_url("postgres://h/muster_test?sslmode=disable")
                .unwrap()
                .0,
            "postgres://h/muster_test_e2e_0badcafe?sslmode=disable"
        );
        assert!(names.database_url("postgres://h:5432").is_err());
        assert_eq!(names.topic_prefix(), "e2e-0badcafe.");
        assert_eq!(names.group_prefix(), "e2e-0badcafe");
    }
}
