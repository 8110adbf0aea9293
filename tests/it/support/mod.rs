//! What the integration tests share, one job a file:
//!
//! - `ports`: loopback ports for servers started as child processes;
//! - `process`: the `gleaner` binary with a clean environment, signals, exits with deadlines;
//! - `server`: `gleaner serve` started on a free port and stopped, and its test environments;
//! - `http`: a client and [`Api`], the request chain to one server written once;
//! - `jwt`: an OIDC issuer (JWKS on loopback, signed tokens) for the API tests;
//! - `sites`, `sources`: web sites on loopback (the sample site) and source definitions;
//! - `peers`, `replica`, `db`: litestream and a SeaweedFS S3 gateway, replicas and their
//!   restores, SQLite content fingerprints;
//! - `poll`: deadline polls, used wherever a test waits for something to happen.
//!
//! Everything is re-exported here, so a test module says `use crate::support::*;` or names
//! what it uses.

pub mod db;
pub mod http;
pub mod jwt;
pub mod peers;
pub mod poll;
pub mod ports;
pub mod process;
pub mod replica;
pub mod server;
pub mod sites;
pub mod sources;

pub use db::*;
pub use http::*;
pub use jwt::*;
pub use peers::*;
pub use poll::*;
pub use ports::free_port;
pub use process::*;
pub use replica::*;
pub use server::*;
pub use sites::*;
pub use sources::*;
