//! What every muster worker shares: client settings for Kafka and PostgreSQL, the [`Env`] a
//! process hands its stages, batch reading, the restart loop, dead letters, the projection
//! runtime, schema migrations, readiness and metrics endpoints, and shutdown on SIGTERM.

pub mod batch;
pub mod config;
pub mod dead_letters;
mod env;
pub mod migrate;
pub mod ops;
pub mod pg;
pub mod probe;
pub mod projection;
pub mod readiness;
pub mod restart;
pub mod secrets;
pub mod shutdown;
pub mod signature;
pub mod topics;
mod workers;

pub use config::{DatabaseConfig, KafkaConfig, RegistryConfig, SecurityConfig};
pub use env::Env;
pub use readiness::Health;
pub use shutdown::Shutdown;
pub use workers::Workers;

/// 64 random bits as hex: a suffix that keeps transactional ids, benchmark groups and message
/// ids of different processes apart.
pub fn unique_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}
