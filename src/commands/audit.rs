//! `gleaner audit verify`: checks the audit log in the data directory, chain by chain,
//! against the signed anchors and the checkpoint (see `store::audit`). It needs the server
//! secret (which keys the chain) but no running server, and it only reads the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::cli;
use super::CommandError;
use crate::auth::{load_server_secret, DerivedKeys};
use crate::config::Config;
use crate::store::{CheckpointReport, VerifyReport, GLOBAL_CHAIN};
use crate::tenant::TenantId;

/// One chain's result.
#[derive(Debug, Serialize)]
pub struct ChainResult {
    /// The tenant, or `""` for the global chain.
    pub chain: String,
    #[serde(flatten)]
    pub report: VerifyReport,
}

/// What `gleaner audit verify` found.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub chains: Vec<ChainResult>,
    /// The checkpoint over all chains; with `--tenant`, only inside that chain's report
    /// when it has no entries and no anchor (a problem elsewhere is not this tenant's).
    pub checkpoint: Option<CheckpointReport>,
}

fn name(chain: &str) -> String {
    if chain == GLOBAL_CHAIN {
        "the global chain".into()
    } else {
        format!("chain {chain}")
    }
}

impl Verification {
    /// One line per chain and one for the checkpoint.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for c in &self.chains {
            let r = &c.report;
            match &r.first_broken {
                None => {
                    out += &format!("ok      {}: {} entries", name(&c.chain), r.entries);
                    if let Some(h) = &r.head {
                        out += &format!(", head seq {} {}", h.seq, h.hash);
                    }
                    out.push('\n');
                }
                Some(b) => {
                    out += &format!(
                        "BROKEN  {} at seq {}: {}\n",
                        name(&c.chain),
                        b.seq,
                        b.reason
                    )
                }
            }
        }
        match &self.checkpoint {
            Some(CheckpointReport {
                reason: None,
                entries,
                chains,
                last_seq,
                mac,
                ..
            }) => {
                out += &format!(
                    "ok      checkpoint: {entries} entries in {chains} chains up to seq {last_seq}, mac {mac}\n"
                )
            }
            Some(CheckpointReport {
                reason: Some(r), ..
            }) => out += &format!("BROKEN  checkpoint: {r}\n"),
            None => {}
        }
        out
    }

    /// The first problem, for the error message.
    pub fn first_problem(&self) -> Option<String> {
        self.chains
            .iter()
            .find_map(|c| {
                c.report.first_broken.as_ref().map(|b| {
                    format!(
                        "{} is broken at seq {}: {}",
                        name(&c.chain),
                        b.seq,
                        b.reason
                    )
                })
            })
            .or_else(|| {
                self.checkpoint
                    .as_ref()
                    .and_then(|c| c.reason.as_ref())
                    .map(|r| format!("the checkpoint does not hold: {r}"))
            })
    }
}

/// `gleaner audit verify [--tenant T]`: every chain and the checkpoint, or one tenant's
/// chain (judged against the checkpoint only when it has no entries and no anchor, the one
/// case where only the checkpoint can show it was removed).
pub async fn verify(cfg: &Config, tenant: Option<&str>) -> Result<Verification, CommandError> {
    let tenant = tenant
        .map(|t| TenantId::parse(t).map_err(|e| CommandError::Usage(format!("--tenant: {e}"))))
        .transpose()?;
    let dir = &cfg.store.data_dir;
    let control = dir.join("control.db");
    if !control.exists() {
        return Err(CommandError::Usage(format!(
            "no audit log to verify: {} does not exist (set --data-dir or store.data_dir)",
            control.display()
        )));
    }
    // Without the secret nothing can be checked; generating a new one (as `serve` does on
    // first start) would only make every chain look forged.
    if cfg.auth.secret.is_none()
        && cfg.auth.secret_file.is_none()
        && !dir.join("server.secret").exists()
    {
        return Err(CommandError::Usage(format!(
            "no server secret: the audit chain is keyed by it; set auth.secret or \
             auth.secret_file, or keep {} in the data directory",
            dir.join("server.secret").display()
        )));
    }
    let secret = load_server_secret(&cfg.auth, dir)?;
    let key = DerivedKeys::from_secret(&secret).audit;
    let store = cli::open_store(cfg).await?;
    let result = async {
        let names = match &tenant {
            Some(t) => vec![t.as_str().to_owned()],
            None => store.audit_chains().await?,
        };
        let mut chains = Vec::with_capacity(names.len());
        for chain in names {
            let report = store.verify_audit(&key, &chain).await?;
            chains.push(ChainResult { chain, report });
        }
        let checkpoint = match tenant {
            Some(_) => None,
            None => Some(store.audit_checkpoint_report(&key).await?),
        };
        Ok::<_, CommandError>(Verification {
            ok: chains.iter().all(|c| c.report.ok) && checkpoint.as_ref().is_none_or(|c| c.ok),
            chains,
            checkpoint,
        })
    }
    .await;
    store.close().await;
    result
}

#[derive(Subcommand)]
pub enum AuditCommand {
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

pub fn run(config: Option<&Path>, c: AuditCommand) -> ExitCode {
    let AuditCommand::Verify {
        tenant,
        json,
        data_dir,
    } = c;
    let mut cfg = match cli::load(config, &cli::data_dir_override(data_dir)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    cfg.log.level = "warn".into();
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    match cli::runtime().block_on(verify(&cfg, tenant.as_deref())) {
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
        Err(e) => cli::fail(&e, e.kind()),
    }
}
