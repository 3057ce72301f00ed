//! The thin HTTP API over the projections. It only reads projections (and, in later routes,
//! writes configuration), so it scales by running more copies.

mod admin;
mod checkins;
pub mod config;
mod events;
pub mod partners;
pub mod problem;
mod server;

pub use config::ApiConfig;
pub use partners::MIGRATIONS;
pub use server::{AppState, routes, run};
