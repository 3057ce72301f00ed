//! What every muster worker shares: client settings for Kafka and PostgreSQL, schema migrations,
//! health and metrics endpoints, and shutdown on SIGTERM.

pub mod batch;
pub mod config;
pub mod health;
pub mod migrate;
pub mod ops;
pub mod probe;
pub mod secrets;
pub mod shutdown;
pub mod signature;
pub mod topics;

pub use config::{DatabaseConfig, KafkaConfig, RegistryConfig, SecurityConfig};
pub use health::Health;
pub use shutdown::Shutdown;

/// 64 random bits as hex: a suffix that keeps transactional ids, benchmark groups and message
/// ids of different processes apart.
pub fn unique_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}
