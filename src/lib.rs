//! Gleaner: an edge data harvester with embedded per-tenant storage and replication.
//!
//! Module map and dependency rules: ../shared/docs/architecture.md. In short: `config`,
//! `tenant`, `error` and `cpu` are leaves; `store` owns SQLite; `http` serves the API and is
//! used by nothing; `app` wires everything together; `main.rs` only parses the CLI.

pub mod app;
pub mod auth;
pub mod commands;
pub mod config;
pub mod cpu;
pub mod demo;
pub mod error;
pub mod harvest;
pub mod http;
pub mod replicate;
pub mod store;
pub mod telemetry;
pub mod tenant;
