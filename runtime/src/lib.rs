//! What every muster worker shares: client settings for Kafka and PostgreSQL, schema migrations,
//! health and metrics endpoints, and shutdown on SIGTERM.

pub mod config;
pub mod health;
pub mod migrate;
pub mod ops;
pub mod secrets;
pub mod shutdown;
pub mod signature;
pub mod topics;

pub use config::{DatabaseConfig, KafkaConfig, RegistryConfig, SecurityConfig};
pub use health::Health;
pub use shutdown::Shutdown;
