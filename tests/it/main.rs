//! Gleaner's integration tests: one test binary (`it`), so the crate is linked once for all
//! of them (the model is ripgrep's tests/tests.rs).
//!
//! Layout: each module below is one former tests/<name>.rs binary, under the same name, in
//! tests/it/<name>.rs (or tests/it/<name>/ when it has parts). What they share lives in
//! tests/it/support/ (see its header): ports, the `gleaner` process and `gleaner serve`,
//! HTTP request helpers, sites and source definitions, the replication peers (litestream,
//! SeaweedFS), and deadline polls. Fixture files stay in tests/fixtures/, where src/ and
//! fuzz/ read them too.
//!
//! Running: `cargo test --test it` runs everything; one old group by its module path,
//! e.g. `cargo test --test it harvest_runtime::`; one test by its name,
//! `cargo test --test it -- --exact server::version_and_help`. The ignored schemathesis
//! run: `cargo test --test it -- --ignored api_schemathesis::`.
//!
//! All tests share one process: none may change the process's environment, working
//! directory or umask (children get theirs through `Command`), and ports for child
//! servers come from `support::ports`, unique within the process.

mod support;

mod api_changes;
mod api_connections;
mod api_hardening;
mod api_keys_audit;
mod api_matrix;
mod api_oidc;
mod api_records;
mod api_schemathesis;
mod api_tls;
mod audit_verify;
mod config_cli;
mod config_reference;
mod connection_cli;
mod crash_loop;
mod disk_full;
mod export_cli;
mod file_modes;
mod harvest_api;
mod harvest_demo;
mod harvest_extract;
mod harvest_guard;
mod harvest_resume;
mod harvest_runtime;
mod harvest_webhooks;
mod ltx_litestream_compat;
mod replicate_bad;
mod replicate_compat;
mod replicate_crash;
mod replicate_faults;
mod replicate_hooks;
mod replicate_resume;
mod replicate_s3;
mod replicate_verify;
mod sample_site;
mod server;
mod sources_reference;
mod store_writer;
mod support_ports;
mod telemetry_otlp;
mod tenant_orphans;
