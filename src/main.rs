//! The `gleaner` command: parses the CLI, loads configuration, starts telemetry, calls the
//! library, and turns errors into exit codes (see `gleaner::error::ErrorKind::exit_code`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gleaner::config::{self, Config, LogFormat, Overrides};
use gleaner::replicate::plan::RestoreTarget;

#[derive(Parser)]
#[command(
    name = "gleaner",
    version,
    about = "Edge data harvester: harvest, store, replicate, serve."
)]
struct Cli {
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
    Serve(ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The bundled sample site (a registry of competency standards) for demos and benchmarks.
    #[command(subcommand)]
    SampleSite(SampleSiteCommand),
    /// Manage API keys directly in the data directory.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Check the audit log in the data directory.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write a tenant's records as NDJSON or CSV (the API export's output and filters).
    Export(ExportCli),
    /// Fill a tenant with synthetic records (benchmarks).
    #[command(hide = true)]
    BenchSeed {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        records: u64,
        /// Also write a plain SQLite copy of the records here (for Datasette).
        #[arg(long, value_name = "FILE")]
        plain_copy: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Run one harvest of one source in the foreground and print its summary.
    Harvest(HarvestArgs),
    /// Serve the sample site on loopback, harvest it into a `demo` tenant, then serve the
    /// API with a generated admin token. Needs no network.
    Demo(DemoArgs),
    /// Restore a database from a replica (Gleaner's or Litestream's) to OUT.
    Restore(RestoreCli),
    /// Restore a replica's latest state to a temporary file and check its integrity.
    Verify {
        /// `s3://bucket/path?endpoint=…&region=…&force_path_style=true` or `file:///dir`.
        #[arg(value_name = "REPLICA_URL")]
        url: String,
    },
    /// Replicate a SQLite database another program writes (WAL mode) until SIGTERM/SIGINT.
    Replicate {
        /// The database file.
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Where to replicate it.
        #[arg(long, value_name = "URL")]
        replica: String,
    },
    /// Exit 0 if the local server answers /readyz with 200 (for container health checks).
    Healthcheck {
        /// host:port to check instead of http.listen from the configuration.
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000, value_name = "MS")]
        timeout_ms: u64,
    },
}

#[derive(Args)]
struct RestoreCli {
    /// Output database file (written as OUT.tmp, then renamed).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Restore the last state before this time (RFC 3339, e.g. 2026-01-02T03:04:05Z).
    #[arg(long, conflicts_with = "txid", value_name = "RFC3339")]
    timestamp: Option<String>,
    /// Restore the state after this TXID (decimal, 0x-hex, or 16 hex digits as Litestream).
    #[arg(long, value_name = "N")]
    txid: Option<String>,
    /// Overwrite OUT if it exists.
    #[arg(long, conflicts_with = "if_db_not_exists")]
    force: bool,
    /// Exit 0 without restoring when OUT already exists and is not empty (Litestream's
    /// `-if-db-not-exists`): safe to run before every start.
    #[arg(long)]
    if_db_not_exists: bool,
    /// Exit 0 without restoring when the replica holds no files (Litestream's
    /// `-if-replica-exists`): a new installation starts empty instead of failing.
    #[arg(long)]
    if_replica_exists: bool,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    parallelism: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// `s3://bucket/path?endpoint=…&region=…&force_path_style=true` or `file:///dir`.
    #[arg(value_name = "REPLICA_URL")]
    url: String,
}

fn parse_txid(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    if s.len() == 16 {
        return u64::from_str_radix(s, 16).ok();
    }
    s.parse().ok()
}

fn parse_time(s: &str) -> Option<std::time::SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    (ns >= 0).then(|| std::time::UNIX_EPOCH + Duration::from_nanos(ns as u64))
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (overrides http.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log format (overrides log.format).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `debug` (overrides log.level).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Allow harvesting loopback, private and other non-public addresses (sets
    /// harvest.allow_private_targets); only for sites on the node itself or trusted tenants.
    #[arg(long)]
    allow_private_targets: bool,
}

#[derive(Args)]
struct HarvestArgs {
    /// Tenant (created when it does not exist).
    #[arg(long)]
    tenant: String,
    /// Source id (optional with --source-file: the file's id).
    #[arg(long)]
    source: Option<String>,
    /// Source definition (TOML, or JSON when it ends in .json) to store before running.
    #[arg(long, value_name = "FILE")]
    source_file: Option<PathBuf>,
    /// Print the run summary as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Registry entries on the sample site (50 per listing page).
    #[arg(long, default_value_t = 3000)]
    entities: u32,
    /// Address of the Gleaner API (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// Data directory of the demo.
    #[arg(long, default_value = "./gleaner-demo", value_name = "DIR")]
    data_dir: PathBuf,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration; exit 2 with a message naming the source, key
    /// and expected value if it is wrong.
    Check {
        /// Print the effective configuration (secrets redacted) as TOML.
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Subcommand)]
enum SampleSiteCommand {
    /// Serve the site over HTTP until Ctrl-C.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
        /// Registry entries (50 per listing page).
        #[arg(long, default_value_t = 5000)]
        entities: u32,
    },
    /// Write the site as static files (for nginx), with links in /registry/detail/N.html form.
    Export {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 20000)]
        entities: u32,
        /// Base URL written into the sitemap and feed.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        base: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key and print its token once (it cannot be shown again). Either
    /// `--admin` (global admin) or `--tenant T --role R`.
    Create {
        /// A global admin key: the first admin credential of a new installation.
        #[arg(long, conflicts_with_all = ["tenant", "role"])]
        admin: bool,
        /// The tenant the key belongs to.
        #[arg(long, requires = "role", value_name = "TENANT")]
        tenant: Option<String>,
        /// tenant-admin, editor or reader.
        #[arg(long, requires = "tenant", value_name = "ROLE")]
        role: Option<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "created on the command line")]
        name: String,
        /// Expire the key after this many seconds.
        #[arg(long, value_name = "SECS")]
        expires_in_secs: Option<u64>,
        /// Data directory (overrides store.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormatArg {
    Ndjson,
    Csv,
}

#[derive(Args)]
struct ExportCli {
    /// The tenant whose records to export.
    #[arg(long, value_name = "TENANT")]
    tenant: String,
    /// NDJSON (one record per line, as the API lists them) or CSV (RFC 4180).
    #[arg(long, value_enum, default_value = "ndjson")]
    format: ExportFormatArg,
    /// Only records of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only records whose key starts with this.
    #[arg(long, value_name = "PREFIX")]
    key_prefix: Option<String>,
    /// Only records whose current version started at or after this time (ms since 1970).
    #[arg(long, value_name = "MS")]
    changed_since: Option<i64>,
    /// true: only records marked removed; false: only present ones. Default: both.
    #[arg(long, value_name = "BOOL")]
    removed: Option<bool>,
    /// With --equals: only records whose field at this dotted path equals the value.
    #[arg(long, requires = "equals", value_name = "PATH")]
    field: Option<String>,
    #[arg(long, requires = "field", value_name = "VALUE")]
    equals: Option<String>,
    /// Full-text query: words, `word*` for a prefix.
    #[arg(long, short = 'q', value_name = "WORDS")]
    q: Option<String>,
    /// Only these fields (comma-separated dotted paths), as named columns in CSV.
    #[arg(long, value_name = "A,B.C")]
    fields: Option<String>,
    /// Write here (via FILE.partial, renamed when complete) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// CSV: prefix text cells that would start a spreadsheet formula with `'`. Default:
    /// http.csv_neutralize_formulas (true).
    #[arg(long, value_name = "BOOL")]
    neutralize_formulas: Option<bool>,
    /// Data directory (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every audit chain (or one tenant's) link by link, against its signed anchor and
    /// the checkpoint over all chains; exit 1 naming the first problem when it is broken.
    Verify {
        /// Only this tenant's chain (and the checkpoint).
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Data directory (overrides store.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            log_format: self.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
            log_level: self.log_level.clone(),
            allow_private_targets: self.allow_private_targets,
        }
    }
}

fn load(cli_config: Option<&PathBuf>, o: &Overrides) -> Result<Config, ExitCode> {
    config::load(cli_config.map(PathBuf::as_path), o).map_err(|e| {
        eprintln!("gleaner: configuration error: {e}");
        ExitCode::from(e.kind().exit_code() as u8)
    })
}

/// Prints a command's error and maps it to the exit code of its kind.
fn finish(r: Result<(), gleaner::app::AppError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gleaner: {e}");
            ExitCode::from(e.kind().exit_code() as u8)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gleaner-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gleaner: cannot start the async runtime: {e}");
            std::process::exit(3);
        }
    }
}

// Allocation-heavy paths (pages of records, JSON bodies, parsed HTML) spent a tenth of their
// CPU in glibc's malloc bookkeeping under load; see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let cfg = match load(cli.config.as_ref(), &args.overrides()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            match runtime().block_on(gleaner::app::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "gleaner stopped with an error");
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Config(ConfigCommand::Check { print, serve }) => {
            let cfg = match load(cli.config.as_ref(), &serve.overrides()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = cfg.admin_token() {
                eprintln!("gleaner: configuration error: {e}");
                return ExitCode::from(e.kind().exit_code() as u8);
            }
            if print {
                match toml::to_string_pretty(&cfg) {
                    Ok(s) => print!("{s}"),
                    Err(e) => {
                        eprintln!("gleaner: cannot print configuration: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                println!("configuration OK");
            }
            ExitCode::SUCCESS
        }
        Command::SampleSite(SampleSiteCommand::Export {
            out,
            entities,
            base,
        }) => {
            let site = gleaner::demo::Site::new(entities);
            match gleaner::demo::export_static(&site, &out, &base) {
                Ok(pages) => {
                    println!("wrote {pages} HTML pages under {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!(
                        "gleaner: cannot write the sample site under {}: {e}",
                        out.display()
                    );
                    ExitCode::from(3)
                }
            }
        }
        Command::SampleSite(SampleSiteCommand::Serve { listen, entities }) => {
            runtime().block_on(async move {
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("gleaner: cannot listen on {listen}: {e}");
                        return ExitCode::from(3);
                    }
                };
                println!("sample site on http://{listen}/ ({entities} entries); Ctrl-C stops it");
                let app = gleaner::demo::router(entities);
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                match axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("gleaner: sample site failed: {e}");
                        ExitCode::from(1)
                    }
                }
            })
        }
        Command::Restore(a) => {
            let cfg = match load(cli.config.as_ref(), &Overrides::default()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            let target = match (&a.txid, &a.timestamp) {
                (Some(t), _) => match parse_txid(t) {
                    Some(n) => RestoreTarget::Txid(n),
                    None => {
                        eprintln!("gleaner: --txid {t:?}: expected a decimal number, 0x-hex, or 16 hex digits");
                        return ExitCode::from(2);
                    }
                },
                (None, Some(ts)) => match parse_time(ts) {
                    Some(t) => RestoreTarget::Timestamp(t),
                    None => {
                        eprintln!("gleaner: --timestamp {ts:?}: expected RFC 3339, e.g. 2026-01-02T03:04:05Z");
                        return ExitCode::from(2);
                    }
                },
                (None, None) => RestoreTarget::Latest,
            };
            let args = gleaner::app::RestoreArgs {
                url: a.url,
                output: a.output,
                target,
                force: a.force,
                if_db_not_exists: a.if_db_not_exists,
                if_replica_exists: a.if_replica_exists,
                parallelism: a.parallelism.max(1),
                progress: !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            finish(runtime().block_on(gleaner::app::restore_cmd(&cfg, args)))
        }
        Command::Verify { url } => {
            let cfg = match load(cli.config.as_ref(), &Overrides::default()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            finish(runtime().block_on(gleaner::app::verify_cmd(&cfg, &url)))
        }
        Command::Replicate { db, replica } => {
            let cfg = match load(cli.config.as_ref(), &Overrides::default()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            finish(runtime().block_on(gleaner::app::replicate_cmd(&cfg, &db, &replica)))
        }
        Command::Key(KeyCommand::Create {
            admin,
            tenant,
            role,
            name,
            expires_in_secs,
            data_dir,
        }) => {
            let o = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let cfg = match load(cli.config.as_ref(), &o) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let who = match (admin, tenant, role) {
                (true, None, None) => gleaner::app::KeyFor::Admin,
                (false, Some(t), Some(r)) => {
                    let tenant = match gleaner::tenant::TenantId::parse(&t) {
                        Ok(t) => t,
                        Err(e) => {
                            eprintln!("gleaner: --tenant: {e}");
                            return ExitCode::from(2);
                        }
                    };
                    match gleaner::auth::Role::parse(&r) {
                        Some(role) if role != gleaner::auth::Role::Admin => {
                            gleaner::app::KeyFor::Tenant { tenant, role }
                        }
                        _ => {
                            eprintln!("gleaner: --role must be tenant-admin, editor or reader (use --admin for an admin key)");
                            return ExitCode::from(2);
                        }
                    }
                }
                _ => {
                    eprintln!("gleaner: give either --admin, or --tenant and --role");
                    return ExitCode::from(2);
                }
            };
            match runtime().block_on(gleaner::app::create_key(&cfg, who, &name, expires_in_secs)) {
                Ok(token) => {
                    println!("{token}");
                    eprintln!("gleaner: store this token now; it is not shown again");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Audit(AuditCommand::Verify {
            tenant,
            json,
            data_dir,
        }) => {
            let o = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let mut cfg = match load(cli.config.as_ref(), &o) {
                Ok(c) => c,
                Err(code) => return code,
            };
            cfg.log.level = "warn".into();
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            let r = runtime().block_on(gleaner::commands::audit::verify(&cfg, tenant.as_deref()));
            match r {
                Ok(v) => {
                    if json {
                        println!("{}", serde_json::to_string(&v).unwrap_or_default());
                    } else {
                        print!("{}", v.describe());
                    }
                    match v.first_problem() {
                        None => ExitCode::SUCCESS,
                        Some(p) => {
                            eprintln!("gleaner: the audit log does not verify: {p}");
                            ExitCode::from(1)
                        }
                    }
                }
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Export(a) => {
            let o = Overrides {
                data_dir: a.data_dir.clone(),
                ..Overrides::default()
            };
            let mut cfg = match load(cli.config.as_ref(), &o) {
                Ok(c) => c,
                Err(code) => return code,
            };
            cfg.log.level = "warn".into();
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            let to_file = a.output.clone();
            let args = gleaner::commands::export::ExportArgs {
                tenant: a.tenant,
                format: Some(match a.format {
                    ExportFormatArg::Ndjson => gleaner::store::export::ExportFormat::Ndjson,
                    ExportFormatArg::Csv => gleaner::store::export::ExportFormat::Csv,
                }),
                source: a.source,
                key_prefix: a.key_prefix,
                changed_since: a.changed_since,
                removed: a.removed,
                field: a.field,
                equals: a.equals,
                q: a.q,
                fields: a.fields,
                output: a.output,
                neutralize_formulas: a
                    .neutralize_formulas
                    .unwrap_or(cfg.http.csv_neutralize_formulas),
            };
            match runtime().block_on(gleaner::commands::export::export(&cfg, args)) {
                Ok(done) => {
                    if let Some(p) = to_file {
                        eprintln!(
                            "gleaner: exported {} records ({} bytes) to {}",
                            done.records,
                            done.bytes,
                            p.display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Harvest(args) => {
            let mut cfg = match load(cli.config.as_ref(), &args.serve.overrides()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if args.serve.log_level.is_none() {
                cfg.log.level = "warn".into();
            }
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            let r = runtime().block_on(gleaner::commands::harvest::harvest(
                cfg,
                &args.tenant,
                args.source.as_deref(),
                args.source_file.as_deref(),
                !args.quiet && !args.json,
            ));
            match r {
                Ok(summary) => {
                    if args.json {
                        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
                    } else {
                        print!("{}", gleaner::commands::harvest::describe(&summary));
                    }
                    if summary.status == "succeeded" {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::BenchSeed {
            tenant,
            records,
            plain_copy,
            data_dir,
        } => {
            let o = Overrides {
                data_dir,
                ..Overrides::default()
            };
            let cfg = match load(cli.config.as_ref(), &o) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let tenant = match gleaner::tenant::TenantId::parse(&tenant) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("gleaner: --tenant: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime().block_on(gleaner::app::seed_records(
                &cfg,
                &tenant,
                records,
                plain_copy.as_deref(),
            )) {
                Ok(rate) => {
                    println!("seeded {records} records into {tenant} at {rate:.0} records/s");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Demo(args) => {
            let o = Overrides {
                listen: Some(args.listen),
                data_dir: Some(args.data_dir.clone()),
                ..Overrides::default()
            };
            let mut cfg = match load(cli.config.as_ref(), &o) {
                Ok(c) => c,
                Err(code) => return code,
            };
            cfg.log.level = "warn".into();
            let _tracing = gleaner::telemetry::init_tracing(&cfg.log);
            let r = runtime().block_on(gleaner::commands::demo::demo(
                cfg,
                args.entities,
                !args.quiet,
            ));
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(e.kind().exit_code() as u8)
                }
            }
        }
        Command::Healthcheck { addr, timeout_ms } => {
            let cfg = match load(cli.config.as_ref(), &Overrides::default()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let r = runtime().block_on(gleaner::app::healthcheck(
                &cfg,
                addr.as_deref(),
                Duration::from_millis(timeout_ms),
            ));
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gleaner: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
