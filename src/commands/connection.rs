//! `gleaner connection put|list|delete`: a tenant's connections (named credentials that
//! sources share, docs/sources.md#connections) written straight into the data directory,
//! as `gleaner harvest --source-file` writes sources and `gleaner key create` writes keys:
//! an installation provisioned without a running server (configuration management, an
//! image build) can define what its sources use. The file is the operator's, so `env:` and
//! `file:` secret references are allowed, which the API refuses. Changes are audited with
//! actor `cli`, in the tenant's chain, like the API's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::cli;
use super::harvest::{ensure_tenant, open};
use super::CommandError;
use crate::auth::load_server_secret;
use crate::config::Config;
use crate::harvest::source::{ConnectionDef, ConnectionName};
use crate::store::{AuditEntry, MAX_CONNECTIONS};
use crate::tenant::TenantId;

#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// Create or replace a connection from a file: `[auth]` as in a source's inline auth
    /// (TOML, or JSON when the name ends in `.json`). Creates the tenant when missing.
    Put {
        #[arg(long)]
        tenant: String,
        /// The connection's name, as sources write it in `connection = "NAME"`.
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Data directory (overrides store.data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print the tenant's connections, one per line: name, auth type, last change (ms).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Delete a connection and its token state; refused while a source names it.
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(config: Option<&Path>, c: ConnectionCommand) -> ExitCode {
    let data_dir = match &c {
        ConnectionCommand::Put { data_dir, .. }
        | ConnectionCommand::List { data_dir, .. }
        | ConnectionCommand::Delete { data_dir, .. } => data_dir.clone(),
    };
    let cfg = match cli::load(config, &cli::data_dir_override(data_dir)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cli::runtime().block_on(exec(&cfg, c)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e, e.kind()),
    }
}

fn tenant_arg(t: &str) -> Result<TenantId, CommandError> {
    TenantId::parse(t).map_err(|e| CommandError::Usage(format!("--tenant: {e}")))
}

fn name_arg(n: &str) -> Result<ConnectionName, CommandError> {
    ConnectionName::parse(n).map_err(|e| CommandError::Usage(format!("--name: {e}")))
}

fn read_file(path: &Path) -> Result<ConnectionDef, CommandError> {
    let text = std::fs::read_to_string(path).map_err(|e| CommandError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let json = path.extension().is_some_and(|e| e == "json");
    ConnectionDef::parse_file(&text, json)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))
}

/// Runs the subcommand; what it prints on success.
async fn exec(cfg: &Config, c: ConnectionCommand) -> Result<String, CommandError> {
    // Everything the line can get wrong is checked before the store is opened.
    let (tenant, action) = match &c {
        ConnectionCommand::Put {
            tenant, name, file, ..
        } => (
            tenant_arg(tenant)?,
            Some((name_arg(name)?, Some(read_file(file)?))),
        ),
        ConnectionCommand::List { tenant, .. } => (tenant_arg(tenant)?, None),
        ConnectionCommand::Delete { tenant, name, .. } => {
            (tenant_arg(tenant)?, Some((name_arg(name)?, None)))
        }
    };
    let (store, h) = open(cfg).await?;
    let result = async {
        match action {
            None => {
                store.get_tenant(&tenant).await?;
                let mut out = String::new();
                for (row, def) in h.list_connections(&tenant, None, MAX_CONNECTIONS).await? {
                    out += &format!("{}\t{}\t{}\n", row.name, auth_type(&def), row.updated_ms);
                }
                Ok(out)
            }
            Some((name, Some(def))) => {
                ensure_tenant(&store, &tenant).await?;
                let created = h.put_connection(&tenant, &name, &def).await?;
                let action = if created {
                    "connection.created"
                } else {
                    "connection.replaced"
                };
                audit(cfg, &store, &tenant, action, &name).await?;
                Ok(format!(
                    "{} connection {tenant}/{name}\n",
                    if created { "created" } else { "replaced" }
                ))
            }
            Some((name, None)) => {
                store.get_tenant(&tenant).await?;
                h.delete_connection(&tenant, &name).await?;
                audit(cfg, &store, &tenant, "connection.deleted", &name).await?;
                Ok(format!("deleted connection {tenant}/{name}\n"))
            }
        }
    }
    .await;
    store.close().await;
    result
}

/// The `type` of a connection's auth, as its definition spells it.
fn auth_type(def: &ConnectionDef) -> String {
    serde_json::to_value(&def.auth)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn audit(
    cfg: &Config,
    store: &crate::store::Store,
    tenant: &TenantId,
    action: &str,
    name: &ConnectionName,
) -> Result<(), CommandError> {
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let keys = crate::auth::DerivedKeys::from_secret(&secret);
    let entry = AuditEntry {
        tenant: tenant.to_string(),
        at_ms: crate::auth::now_ms(),
        actor: "cli".into(),
        action: action.into(),
        target: name.to_string(),
        remote: "local".into(),
        outcome: "success".into(),
        detail: serde_json::json!({}),
    };
    store.append_audit(&keys.audit, entry).await?;
    Ok(())
}
