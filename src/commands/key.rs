//! `gleaner key create`: an API key written straight into the data directory (no server
//! needed): the first admin credential of a new installation, or a tenant's key. The token
//! is printed once; the creation is audited with actor `cli`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::cli;
use super::CommandError;
use crate::auth::{load_server_secret, Role};
use crate::config::Config;
use crate::store::{AuditEntry, NewApiKey, GLOBAL_CHAIN};
use crate::tenant::TenantId;

#[derive(Subcommand)]
pub enum KeyCommand {
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

/// Who a key created on the command line is for.
#[derive(Debug, Clone)]
pub enum KeyFor {
    Admin,
    Tenant { tenant: TenantId, role: Role },
}

pub fn run(config: Option<&Path>, c: KeyCommand) -> ExitCode {
    let KeyCommand::Create {
        admin,
        tenant,
        role,
        name,
        expires_in_secs,
        data_dir,
    } = c;
    let cfg = match cli::load(config, &cli::data_dir_override(data_dir)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let who = match key_for(admin, tenant, role) {
        Ok(w) => w,
        Err(message) => {
            eprintln!("gleaner: {message}");
            return ExitCode::from(2);
        }
    };
    match cli::runtime().block_on(create_key(&cfg, who, &name, expires_in_secs)) {
        Ok(token) => {
            println!("{token}");
            eprintln!("gleaner: store this token now; it is not shown again");
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e, e.kind()),
    }
}

/// What the flags ask for, or what is wrong with them.
fn key_for(admin: bool, tenant: Option<String>, role: Option<String>) -> Result<KeyFor, String> {
    match (admin, tenant, role) {
        (true, None, None) => Ok(KeyFor::Admin),
        (false, Some(t), Some(r)) => {
            let tenant = TenantId::parse(&t).map_err(|e| format!("--tenant: {e}"))?;
            match Role::parse(&r) {
                Some(role) if role != Role::Admin => Ok(KeyFor::Tenant { tenant, role }),
                _ => Err(
                    "--role must be tenant-admin, editor or reader (use --admin for an admin key)"
                        .into(),
                ),
            }
        }
        _ => Err("give either --admin, or --tenant and --role".into()),
    }
}

/// Creates an API key directly in the store and returns its token, which is shown only
/// this once.
pub async fn create_key(
    cfg: &Config,
    who: KeyFor,
    name: &str,
    expires_in_secs: Option<u64>,
) -> Result<String, CommandError> {
    let store = cli::open_store(cfg).await?;
    let secret = load_server_secret(&cfg.auth, &cfg.store.data_dir)?;
    let keys = crate::auth::DerivedKeys::from_secret(&secret);
    let hasher = crate::auth::KeyHasher::new(&keys.key_hmac);
    let token = hasher
        .generate()
        .map_err(|_| CommandError::Io("cannot create a key: no randomness available".into()))?;
    let (tenant, role) = match &who {
        KeyFor::Admin => (None, Role::Admin),
        KeyFor::Tenant { tenant, role } => (Some(tenant.to_string()), *role),
    };
    let now = crate::auth::now_ms();
    let audit = AuditEntry {
        tenant: tenant.clone().unwrap_or_else(|| GLOBAL_CHAIN.to_owned()),
        at_ms: now,
        actor: "cli".into(),
        action: "key.created".into(),
        target: token.id.clone(),
        remote: "local".into(),
        outcome: "success".into(),
        detail: serde_json::json!({"role": role.as_str(), "name": name}),
    };
    let r = store
        .insert_api_key(
            NewApiKey {
                id: token.id.clone(),
                tenant,
                role: role.as_str().to_owned(),
                name: name.to_owned(),
                secret_hash: token.secret_hash,
                created_ms: now,
                created_by: "cli".into(),
                expires_ms: expires_in_secs.map(|s| now + s as i64 * 1000),
            },
            &keys.audit,
            audit,
        )
        .await;
    store.close().await;
    r?;
    Ok(token.token)
}
