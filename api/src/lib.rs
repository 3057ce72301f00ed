//! The thin HTTP API over the projections. It only reads projections (and, in later routes,
//! writes configuration), so it scales by running more copies.

// warp's filter chain of every route is one deeply nested type; the release build's trait
// solver needs more than the default depth to prove it `Unpin`.
#![recursion_limit = "512"]

mod admin;
pub mod analytics;
mod checkins;
pub mod config;
pub mod dashboard;
mod events;
pub mod flight;
pub mod openapi;
pub mod partners;
pub mod premium;
pub mod problem;
pub mod range;
mod server;
pub mod sql;
pub mod webhooks;

pub use config::ApiConfig;
pub use partners::MIGRATIONS;
pub use server::{AppState, routes, run};
