//! What every muster worker shares: client settings for Kafka and PostgreSQL, schema migrations,
//! health and metrics endpoints, and shutdown on SIGTERM.

pub mod config;
pub mod health;
pub mod migrate;
pub mod ops;
pub mod shutdown;
pub mod topics;

pub use config::{DatabaseConfig, KafkaConfig, RegistryConfig};
pub use health::Health;
pub use shutdown::Shutdown;
