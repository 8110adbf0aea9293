//! The command line: one file per `gleaner` command, each with its arguments (clap) and the
//! function that runs it; `main.rs` parses [`Cli`] and calls [`run`]. Commands are the top
//! of the layering: they use `app` (the server's start-up and shutdown) and the library
//! parts, and nothing uses them.
//!
//! | command | file |
//! |---|---|
//! | `serve` | [`serve`] → `app::serve` |
//! | `config check` | [`config`] |
//! | `harvest` | [`harvest`]: one run in the foreground with a progress bar |
//! | `demo` | [`demo`]: the sample site, a demo tenant, its harvests and the API on loopback |
//! | `sample-site serve / export` | [`sample_site`] |
//! | `key create` | [`key`] |
//! | `connection put / list / delete` | [`connection`]: a tenant's shared credentials |
//! | `audit verify` | [`audit`] |
//! | `export` | [`export`] |
//! | `restore`, `verify`, `replicate` | [`restore`], [`verify`], [`replicate`] |
//! | `healthcheck` | [`healthcheck`] (the container health check) |
//! | `bench-seed` (hidden) | [`bench_seed`] |
//!
//! Shared pieces: [`cli`] (configuration overrides, loading, the runtime, exit codes) and
//! [`error`] (`CommandError`).

pub mod audit;
pub mod bench_seed;
pub mod cli;
pub mod config;
pub mod connection;
pub mod demo;
mod error;
pub mod export;
pub mod harvest;
pub mod healthcheck;
pub mod key;
pub mod replicate;
pub mod restore;
pub mod sample_site;
pub mod serve;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CommandError;

#[derive(Parser)]
#[command(
    name = "gleaner",
    version,
    about = "Edge data harvester: harvest, store, replicate, serve."
)]
pub struct Cli {
    /// Configuration file (TOML). Default: /etc/gleaner/gleaner.toml when it exists,
    /// else built-in defaults. Environment variables GLEANER_<SECTION>__<KEY> override it.
    #[arg(long, global = true, env = "GLEANER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API server until SIGTERM or SIGINT.
    Serve(cli::ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The bundled sample site (a registry of competency standards) for demos and benchmarks.
    #[command(subcommand)]
    SampleSite(sample_site::SampleSiteCommand),
    /// Manage API keys directly in the data directory.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Manage a tenant's connections (credentials sources share) in the data directory.
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Check the audit log in the data directory.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Write a tenant's records as NDJSON or CSV (the API export's output and filters).
    Export(export::ExportCli),
    /// Fill a tenant with synthetic records (benchmarks).
    #[command(hide = true)]
    BenchSeed(bench_seed::BenchSeedArgs),
    /// Run one harvest of one source in the foreground and print its summary.
    Harvest(harvest::HarvestArgs),
    /// Serve the sample site on loopback, harvest it into a `demo` tenant, then serve the
    /// API with a generated admin token. Needs no network.
    Demo(demo::DemoArgs),
    /// Restore a database from a replica (Gleaner's or Litestream's) to OUT.
    Restore(restore::RestoreCli),
    /// Restore a replica's latest state to a temporary file and check its integrity.
    Verify(verify::VerifyArgs),
    /// Replicate a SQLite database another program writes (WAL mode) until SIGTERM/SIGINT.
    Replicate(replicate::ReplicateArgs),
    /// Exit 0 if the local server answers /readyz with 200 (for container health checks).
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Runs the command the line asked for and returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve(a) => serve::run(config, a),
        Command::Config(c) => config::run(config, c),
        Command::SampleSite(c) => sample_site::run(c),
        Command::Key(c) => key::run(config, c),
        Command::Connection(c) => connection::run(config, c),
        Command::Audit(c) => audit::run(config, c),
        Command::Export(a) => export::run(config, a),
        Command::BenchSeed(a) => bench_seed::run(config, a),
        Command::Harvest(a) => harvest::run(config, a),
        Command::Demo(a) => demo::run(config, a),
        Command::Restore(a) => restore::run(config, a),
        Command::Verify(a) => verify::run(config, a),
        Command::Replicate(a) => replicate::run(config, a),
        Command::Healthcheck(a) => healthcheck::run(config, a),
    }
}
