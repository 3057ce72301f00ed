//! The whole configuration: a TOML file (or several, later ones win) plus environment overrides.
//! See `muster.example.toml` for every key with its default.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use muster_api::ApiConfig;
use muster_ingest::IngestConfig;
use muster_processors::ProcessorsConfig;
use muster_projections::ProjectionsConfig;
use muster_runtime::{DatabaseConfig, KafkaConfig, RegistryConfig, SecurityConfig};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub schema_registry: RegistryConfig,
    pub database: DatabaseConfig,
    pub security: SecurityConfig,
    pub ops: OpsConfig,
    pub ingest: IngestConfig,
    pub processors: ProcessorsConfig,
    pub projections: ProjectionsConfig,
    pub api: ApiConfig,
    pub webhooks: muster_webhooks::WebhooksConfig,
    pub insights: muster_analytics::insights::InsightsConfig,
}

/// `/healthz`, `/readyz` and `/metrics` of workers without an HTTP server of their own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsConfig {
    /// Listen address; defaults per worker kind: ingest 9181, process 9182, project 9183,
    /// webhooks 9184, insights 9185.
    pub addr: Option<SocketAddr>,
}

/// The short names DESIGN.md promises, each mapped to its key.
const ENV_ALIASES: [(&str, &str); 7] = [
    ("MUSTER_KAFKA_BROKERS", "kafka.brokers"),
    ("MUSTER_SCHEMA_REGISTRY_URL", "schema_registry.url"),
    ("MUSTER_DATABASE_URL", "database.url"),
    ("MUSTER_API_ADDR", "api.addr"),
    ("MUSTER_ADMIN_TOKEN", "api.admin_token"),
    ("MUSTER_SECRET_KEY", "security.secret_key"),
    ("MUSTER_DEVELOPMENT", "security.development"),
];

impl Config {
    /// Files in order, then `MUSTER_*` aliases, then any key as `MUSTER__SECTION__KEY`
    /// (e.g. `MUSTER__KAFKA__GROUP_PREFIX=test`).
    pub fn load(files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut fig = Figment::new();
        for f in files {
            anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        let names: Vec<&str> = ENV_ALIASES.iter().map(|(n, _)| *n).collect();
        fig = fig
            .merge(Env::raw().only(&names).map(|k| {
                let key = ENV_ALIASES
                    .iter()
                    .find(|(n, _)| k.as_str().eq_ignore_ascii_case(n))
                    .map(|(_, key)| *key)
                    .unwrap_or("unknown");
                key.into()
            }))
            .merge(Env::prefixed("MUSTER__").split("__"));
        let mut cfg: Self = fig.extract().context("invalid configuration")?;
        cfg.api
            .validate()
            .and_then(|()| cfg.database.validate())
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
        cfg.ingest
            .validate()
            .and_then(|()| cfg.webhooks.validate())
            .and_then(|()| cfg.insights.validate())
            .and_then(|()| cfg.kafka.retention.validate())
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(cfg)
    }
}

impl Config {
    /// The registry-backed codec, for the topic names of `kafka.topic_prefix`.
    pub fn codec(&self) -> anyhow::Result<muster_schemas::Codec> {
        Ok(muster_schemas::Codec::new(&self.schema_registry.url)
            .context("creating the schema registry client")?
            .with_topics(self.kafka.topics()))
    }

    /// What every worker of a process shares.
    pub fn env(&self, shutdown: muster_runtime::Shutdown) -> anyhow::Result<muster_runtime::Env> {
        muster_runtime::Env::new(
            &self.kafka,
            &self.schema_registry,
            &self.database,
            &self.security,
            shutdown,
        )
    }

    /// The configuration as `muster config` prints it: every secret replaced by `***`
    /// ([`Secret`](muster_runtime::secrets::Secret) serializes so; URLs and Kafka options
    /// holding credentials are redacted here).
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        use muster_runtime::config::redact_password;
        let mut shown = self.clone();
        shown.database.url = redact_password(&shown.database.url);
        shown.schema_registry.url = redact_password(&shown.schema_registry.url);
        shown.kafka.options = shown.kafka.redacted_options();
        for v in shown.projections.archive.options.values_mut() {
            *v = "***".into();
        }
        if let Some(url) = &mut shown.projections.archive.url {
            *url = redact_password(url);
        }
        for svc in &mut shown.ingest.services {
            svc.authentication = Default::default();
        }
        Ok(toml::to_string_pretty(&shown)?)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_env_overrides_it() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MUSTER_KAFKA_BROKERS", "k:1");
            jail.set_env("MUSTER__PROCESSORS__BATCH_MAX_RECORDS", "7");
            jail.set_env("MUSTER__KAFKA__TOPIC_PREFIX", "run-1.");
            let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("muster.example.toml");
            let cfg = Config::load(&[example]).map_err(|e| format!("{e:#}"))?;
            assert_eq!(cfg.kafka.brokers, "k:1");
            assert_eq!(
                cfg.codec()
                    .map_err(|e| e.to_string())?
                    .topics()
                    .of::<muster_schemas::Alert>(),
                "run-1.muster.alerts.v1"
            );
            assert_eq!(cfg.processors.batch_max_records, 7);
            assert_eq!(cfg.api.addr.port(), 8080);
            Ok(())
        });
    }

    #[test]
    fn topics_are_unprefixed_by_default() {
        let cfg = Config::default();
        assert_eq!(cfg.kafka.topic_prefix, "");
        assert_eq!(
            cfg.kafka.topics().of::<muster_schemas::Alert>(),
            muster_schemas::topics::ALERTS
        );
    }

    #[test]
    fn config_output_shows_no_secret() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MUSTER_ADMIN_TOKEN", "admin-token-0123456789-0123456789-x");
            jail.set_env(
                "MUSTER_SECRET_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            );
            jail.set_env(
                "MUSTER_DATABASE_URL",
                "postgres://muster:db-pass-1@127.0.0.1/muster",
            );
            jail.set_env(
                "MUSTER_SCHEMA_REGISTRY_URL",
                "https://reg-user:reg-pass-1@registry.example/apis/ccompat/v7",
            );
            jail.create_file(
                "kafka.toml",
                "[kafka.options]\n\"sasl.password\" = \"sasl-pass-1\"\n",
            )?;
            let cfg = Config::load(&["kafka.toml".into()]).map_err(|e| format!("{e:#}"))?;
            let shown = cfg.redacted_toml().map_err(|e| e.to_string())?;
            for secret in [
                "admin-token-0123",
                "AAAAAAAA",
                "db-pass-1",
                "reg-pass-1",
                "sasl-pass-1",
            ] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
                assert!(!format!("{cfg:?}").contains(secret), "{secret} in Debug");
            }
            assert!(shown.contains("sasl.password"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn blank_admin_token_is_no_token_and_short_ones_stop_the_start() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MUSTER_ADMIN_TOKEN", "  ");
            let cfg = Config::load(&[]).map_err(|e| format!("{e:#}"))?;
            assert!(cfg.api.admin_token.is_none());
            jail.set_env("MUSTER_ADMIN_TOKEN", "change-me");
            let err = format!("{:#}", Config::load(&[]).unwrap_err());
            assert!(err.contains("at least 32 characters"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = Config::load(&["bad.toml".into()]).unwrap_err();
            assert!(format!("{err:#}").contains("brokerz"), "{err:#}");
            Ok(())
        });
    }
}
