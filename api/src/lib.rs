//! The thin HTTP API over the projections, and the web pages over the same read models. It only reads projections (and writes its own
//! partners and keys), so it scales by running more copies.

mod audit;
mod auth;
mod body;
pub mod config;
mod domain;
pub mod feed;
pub mod flight;
mod migrations;
pub mod openapi;
mod problem;
mod range;
mod read;
mod resources;
mod route;
mod server;
mod web;

pub use config::ApiConfig;
pub use migrations::MIGRATIONS;
pub use server::{AppState, routes, run};
