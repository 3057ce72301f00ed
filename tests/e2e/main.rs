//! Every end-to-end test, in one binary: each module is one stage or one user's view of the
//! product, run against the real Kafka, schema registry and PostgreSQL that `scripts/test.sh`
//! starts. One binary links the dependency tree once; `cargo nextest` (the test command) runs each
//! test in its own process, several at once: each test has a database and topics of its own
//! (see [`common::topics`]).

mod common;

mod admin;
mod analyst;
mod analytics;
mod api;
mod archive;
mod bi_role;
mod declared_tables;
mod flight;
mod golden;
mod ingest;
mod insights;
mod memory;
mod pipeline;
mod portal;
mod processors;
mod projections;
mod search;
mod staging;
mod stream;
mod third_party;
mod web;
mod webhooks;
