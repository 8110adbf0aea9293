//! Loading: built-in defaults < TOML file < `GLEANER_*` environment < CLI flags.
//!
//! This is the only code that reads the process environment for configuration (`env:`
//! secret references of source definitions are read by [`super::Secret::from_env`]).
//! Nested keys use a double underscore in the environment:
//! `GLEANER_HTTP__LISTEN=0.0.0.0:8080` sets `http.listen`. `GLEANER_CONFIG` names the file and is not a key. Every error names where
//! the bad value came from (file path, environment variable, or flag) and the dotted key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Metadata, Source};

use super::{Config, LogFormat};
use crate::error::ErrorKind;

/// Used when no `--config` is given and the file exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/gleaner/gleaner.toml";

/// Values given as CLI flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    /// `--allow-private-targets`: sets `harvest.allow_private_targets`; `false` leaves the
    /// lower layers' value (the flag can only turn the guard off, never back on).
    pub allow_private_targets: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} cannot be read: {reason}")]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("{source_name}: {message}")]
    Invalid {
        /// Where the offending value came from: a file path, an environment variable or a flag.
        source_name: String,
        message: String,
    },
    #[error("{key}: cannot read secret file {path}: {reason}")]
    SecretFile {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl ConfigError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// Which file to read: the explicit one (must exist), else the default path when present.
fn config_file(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    match explicit {
        Some(p) => match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(Some(p.to_path_buf())),
            Ok(_) => Err(ConfigError::FileUnreadable {
                path: p.to_path_buf(),
                reason: "not a regular file".into(),
            }),
            Err(e) => Err(ConfigError::FileUnreadable {
                path: p.to_path_buf(),
                reason: e.to_string(),
            }),
        },
        None => {
            let p = Path::new(DEFAULT_CONFIG_PATH);
            Ok(p.is_file().then(|| p.to_path_buf()))
        }
    }
}

/// Builds the layered figment; exposed for `config check --print` and tests.
fn figment(file: Option<&Path>, env_prefix: &str, o: &Overrides) -> Figment {
    let mut f = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        f = f.merge(Toml::file_exact(path));
    }
    f = f.merge(Env::prefixed(env_prefix).ignore(&["config"]).split("__"));
    let flag = |key: &str, v: figment::value::Value| Serialized::default(key, v);
    if let Some(v) = o.listen {
        f = f.merge(flag("http.listen", v.to_string().into()));
    }
    if let Some(v) = &o.data_dir {
        f = f.merge(flag("store.data_dir", v.display().to_string().into()));
    }
    if let Some(v) = o.log_format {
        let s = match v {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        f = f.merge(flag("log.format", s.into()));
    }
    if let Some(v) = &o.log_level {
        f = f.merge(flag("log.level", v.clone().into()));
    }
    if o.allow_private_targets {
        f = f.merge(flag("harvest.allow_private_targets", true.into()));
    }
    f
}

fn describe_source(md: Option<&Metadata>, env_prefix: &str, key: &[String]) -> String {
    let Some(md) = md else {
        return "configuration".into();
    };
    match &md.source {
        Some(Source::File(p)) => format!("config file {}", p.display()),
        // figment's own interpolation loses the prefix and the `__` nesting, so the
        // variable's name is rebuilt the way `figment()` maps it.
        _ if md.name.contains("environment") => format!(
            "environment variable {env_prefix}{}",
            key.join("__").to_ascii_uppercase()
        ),
        _ if md.name.contains("Serialized") => "command-line flag".into(),
        _ => md.name.to_string(),
    }
}

/// Loads the configuration from `file` (or the default path), the environment and flags.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    load_with_env_prefix(file, overrides, "GLEANER_")
}

pub(crate) fn load_with_env_prefix(
    file: Option<&Path>,
    overrides: &Overrides,
    env_prefix: &str,
) -> Result<Config, ConfigError> {
    let path = config_file(file)?;
    let fig = figment(path.as_deref(), env_prefix, overrides);
    let config: Config = fig.extract().map_err(|e| {
        let source_name = describe_source(e.metadata.as_ref(), env_prefix, &e.path);
        let key = e.path.join(".");
        let message = if key.is_empty() {
            e.kind.to_string()
        } else {
            format!("key `{key}`: {}", e.kind)
        };
        ConfigError::Invalid {
            source_name,
            message,
        }
    })?;
    if let Some(bad) = config.validate().into_iter().next() {
        let md = fig.find_metadata(bad.key);
        let path: Vec<String> = bad.key.split('.').map(str::to_owned).collect();
        return Err(ConfigError::Invalid {
            source_name: describe_source(md, env_prefix, &path),
            message: format!("key `{}`: expected {}", bad.key, bad.expected),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, body: &str) -> PathBuf {
        let p = dir.path().join("g.toml");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        p
    }

    // Each test uses its own env prefix so parallel tests never see each other's variables.
    fn load_t(file: Option<&Path>, o: &Overrides, prefix: &str) -> Result<Config, ConfigError> {
        load_with_env_prefix(file, o, prefix)
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gleaner.toml");
        let c = load_t(Some(&shipped), &Overrides::default(), "GLEANER_T_SHIPPED_").unwrap();
        assert_eq!(c, Config::default());
        // Every key of the defaults is spelled out in the shipped file (not left implicit).
        let text = std::fs::read_to_string(&shipped).unwrap();
        let file: toml::Table = toml::from_str(&text).unwrap();
        let defaults: toml::Table = toml::Value::try_from(Config::default())
            .unwrap()
            .try_into()
            .unwrap();
        for (section, table) in &defaults {
            let ftab = file[section].as_table().unwrap();
            for key in table.as_table().unwrap().keys() {
                assert!(
                    ftab.contains_key(key),
                    "config/gleaner.toml lacks {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[http]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n");
        let e = load_t(Some(&p), &Overrides::default(), "GLEANER_T_UNK_").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn bad_value_names_key_file_and_expectation() {
        let d = tempfile::tempdir().unwrap();
        let p = write(&d, "[http]\nmax_connections = 0\n");
        let msg = load_t(Some(&p), &Overrides::default(), "GLEANER_T_BAD_")
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(msg.contains("http.max_connections"), "{msg}");
        assert!(msg.contains("from 1 to 100000"), "{msg}");
        let p = write(&d, "[log]\nformat = \"xml\"\n");
        let msg = load_t(Some(&p), &Overrides::default(), "GLEANER_T_BAD_")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("log.format") && msg.contains("xml"), "{msg}");
        // SQLite would clamp a larger mapping silently.
        let p = write(&d, "[store]\nreader_mmap_bytes = 4294967296\n");
        let msg = load_t(Some(&p), &Overrides::default(), "GLEANER_T_BAD_")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("store.reader_mmap_bytes") && msg.contains("2147418112"),
            "{msg}"
        );
        let p = write(&d, "[store]\nreader_mmap_bytes = 2147418112\n");
        let c = load_t(Some(&p), &Overrides::default(), "GLEANER_T_BAD_").unwrap();
        assert_eq!(c.store.reader_mmap_bytes, crate::config::MAX_MMAP_BYTES);
    }

    #[test]
    fn precedence_file_env_flag() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            &d,
            "[http]\nlisten = \"127.0.0.1:1001\"\nmax_body_bytes = 111\n[store]\nmax_batch = 7\n",
        );
        // SAFETY: the prefix is unique to this test; no other thread reads these names.
        unsafe {
            std::env::set_var("GLEANER_T_PREC_HTTP__LISTEN", "127.0.0.1:1002");
            std::env::set_var("GLEANER_T_PREC_HTTP__MAX_BODY_BYTES", "222");
        }
        let o = Overrides {
            listen: Some("127.0.0.1:1003".parse().unwrap()),
            ..Default::default()
        };
        let c = load_t(Some(&p), &o, "GLEANER_T_PREC_").unwrap();
        assert_eq!(c.http.listen.port(), 1003);
        assert!(
            !c.harvest.allow_private_targets,
            "no flag, no file, no env: off"
        );
        assert_eq!(c.http.max_body_bytes, 222);
        assert_eq!(c.store.max_batch, 7);
        assert_eq!(
            c.store.readers_per_db,
            StoreConfig::default().readers_per_db
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        unsafe { std::env::set_var("GLEANER_T_ENV_STORE__MAX_BATCH", "lots") };
        let msg = load_t(None, &Overrides::default(), "GLEANER_T_ENV_")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("GLEANER_T_ENV_STORE__MAX_BATCH"), "{msg}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = load_t(
            Some(Path::new("/nonexistent/g.toml")),
            &Overrides::default(),
            "GLEANER_T_MISS_",
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/g.toml"));
    }

    #[test]
    fn secrets_come_from_files_and_env_and_never_print() {
        let d = tempfile::tempdir().unwrap();
        let tok = d.path().join("tok");
        std::fs::write(&tok, "abcdefghijklmnopqrstuvwxyz\n").unwrap();
        let p = write(&d, &format!("[http]\nadmin_token_file = {:?}\n", tok));
        let c = load_t(Some(&p), &Overrides::default(), "GLEANER_T_SEC_").unwrap();
        let t = c.admin_token().unwrap().unwrap();
        assert_eq!(t.expose(), "abcdefghijklmnopqrstuvwxyz");
        assert!(!format!("{c:?}").contains("abcdefgh"));
        unsafe { std::env::set_var("GLEANER_T_SEC2_HTTP__ADMIN_TOKEN", "1234567890123456") };
        let c = load_t(None, &Overrides::default(), "GLEANER_T_SEC2_").unwrap();
        assert_eq!(
            c.admin_token().unwrap().unwrap().expose(),
            "1234567890123456"
        );
        assert!(!toml::to_string(&c).unwrap().contains("1234567890"));
    }
}
