//! Secrets in configuration: values that never print and can come from a file.
//!
//! A secret may be set in the config file, in the environment (`GLEANER_…`), or through a
//! sibling `*_file` key naming a file that holds it (Kubernetes secrets, systemd
//! credentials). Debug and Serialize output are redacted so a secret never reaches a log or
//! `config check --print`.
//!
//! Source definitions from trusted files may also name a secret by environment variable
//! (`env:NAME`); [`Secret::from_env`] reads it here, so only `config` reads the process
//! environment.

use std::fmt;
use std::path::Path;

use serde::de::{self, Visitor};

/// A secret string; compare it with [`Secret::expose`] in constant time where it matters.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret from a file, dropping one trailing newline (files written by `echo`).
    pub fn from_file(path: &Path) -> std::io::Result<Secret> {
        let mut s = std::fs::read_to_string(path)?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        Ok(Secret(s))
    }
}

/// An `env:NAME` secret reference whose variable is unset (or not valid UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the environment variable is not set")]
pub struct EnvSecretUnset {
    pub name: String,
}

impl Secret {
    /// The secret held by the node's environment variable `name`.
    pub fn from_env(name: &str) -> Result<Secret, EnvSecretUnset> {
        std::env::var(name).map(Secret).map_err(|_| EnvSecretUnset {
            name: name.to_owned(),
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Environment values arrive typed ("12345" becomes an integer), so a secret accepts
        // any scalar and keeps its text.
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_secrets_come_from_the_environment_and_name_an_unset_variable() {
        unsafe { std::env::set_var("GLEANER_T_SECRET_FROM_ENV", "s3cr3t") };
        assert_eq!(
            Secret::from_env("GLEANER_T_SECRET_FROM_ENV")
                .unwrap()
                .expose(),
            "s3cr3t"
        );
        let e = Secret::from_env("GLEANER_T_SECRET_NEVER_SET").unwrap_err();
        assert_eq!(e.name, "GLEANER_T_SECRET_NEVER_SET");
        // The reason a run's `env:` secret reference fails with, word for word.
        assert_eq!(e.to_string(), "the environment variable is not set");
    }
}
