//! Gleaner: an edge data harvester with embedded per-tenant storage and replication.
//!
//! Module map, layers and the "may use" rules: docs/architecture.md (the rules are checked
//! by scripts/check-structure.py). In short: `error`, `config`, `tenant`, `cpu` and
//! `telemetry` are leaves; `store` owns SQLite and uses only leaves; `harvest`, `replicate`
//! and `auth` use the store; `http` serves the API; `app` wires the server's start-up and
//! shutdown; `commands` has one file per CLI command; `main.rs` only parses the command line.

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
