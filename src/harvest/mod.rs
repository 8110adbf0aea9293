//! Harvesting: source definitions and the pure extractors that turn fetched bytes into records.
//!
//! This module owns what a tenant can configure about a source ([`source`]) and every
//! extractor ([`extract`]): HTML listings and detail pages, JSON APIs with pagination,
//! sitemaps, RSS/Atom feeds, CSV files and signed push payloads, plus the helpers they share
//! (character sets, URL normalisation, robots.txt, value conversion).
//!
//! Everything here except [`runtime`] is pure: no I/O, no clocks read implicitly, no tokio,
//! hyper or rusqlite. [`runtime`] is the I/O around it — fetching, politeness, the durable
//! frontier, runs, schedules and pushes — and calls the pure functions on the CPU pool
//! (`crate::cpu`) with bytes it fetched; benches and property tests call them directly.
//! Inputs are capped ([`limits`]) and every failure is a typed error with the URL and a
//! reason, never a panic.

pub mod charset;
pub mod convert;
pub mod extract;
pub mod limits;
pub mod link_header;
pub mod record;
pub mod robots;
pub mod runtime;
pub mod source;
pub mod urls;

pub use record::{ExtractedRecord, Warning};
pub use source::{SourceDef, SourceId, SourceSpec};
