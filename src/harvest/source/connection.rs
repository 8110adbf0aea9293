//! Connections: a tenant's named credential ([`Auth`]) that many sources use by name
//! (`connection = "whoop"` in a source definition instead of an inline `auth`).
//!
//! Only the shape and its validation live here; the tenant database stores definitions
//! (`store::connections`) and the runtime keeps one token state per connection
//! (`harvest::runtime::connections`). Like inline auth, a connection holds secret
//! *references*, never values, so showing a definition shows no secret.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::auth::Auth;
use super::error::{Checker, DefinitionError, FieldError};
use super::values::string_serde;
use crate::tenant::MAX_LEN;

/// A connection's name: the alphabet of source ids (a-z, 0-9, '-', 1–63 characters, no
/// leading '-'), so it is safe in paths and in the token table's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionName(String);

impl ConnectionName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        let ok_chars = s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'));
        if n == 0 || n > MAX_LEN || !ok_chars || s.starts_with('-') {
            return Err(format!(
                "connection name {s:?} must be 1 to {MAX_LEN} of a-z, 0-9 and '-', not starting with '-'"
            ));
        }
        Ok(ConnectionName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of this connection's token chain in the tenant's token table. Source ids
    /// (the keys of inline credentials) cannot contain ':', so the two never collide.
    pub fn token_key(&self) -> String {
        format!("connection:{}", self.0)
    }
}

impl fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(ConnectionName);

/// Largest connection definition accepted (bytes of JSON).
pub const MAX_CONNECTION_BYTES: usize = 16 * 1024;

/// What a connection is: the body of `PUT /v1/tenants/{t}/connections/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionDef {
    /// The credential, in the same form as a source's inline `auth`.
    pub auth: Auth,
}

impl ConnectionDef {
    /// Parses and validates a definition sent over the API: only `secret:NAME` references
    /// (a tenant must not read the node's environment or files through a credential).
    pub fn parse_untrusted(text: &[u8]) -> Result<ConnectionDef, DefinitionError> {
        if text.len() > MAX_CONNECTION_BYTES {
            return Err(DefinitionError::TooLarge {
                size: text.len(),
                limit: MAX_CONNECTION_BYTES,
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| DefinitionError::Syntax {
                format: "JSON",
                reason: e.to_string(),
            })?;
        let def = Self::from_value(v)?;
        let mut c = Checker::default();
        for (field, r) in def.auth.secret_refs() {
            if r.is_node_local() {
                c.at("auth", |c| {
                    c.err(
                        &field,
                        "only secret:NAME references are allowed in connections sent over the API",
                    )
                });
            }
        }
        c.finish()?;
        Ok(def)
    }

    /// Parses and validates an operator's file (`gleaner connection put`): TOML, or JSON
    /// when `json`. `env:` and `file:` references are allowed, as in source files the
    /// operator hands to `gleaner harvest`.
    pub fn parse_file(text: &str, json: bool) -> Result<ConnectionDef, DefinitionError> {
        if text.len() > MAX_CONNECTION_BYTES {
            return Err(DefinitionError::TooLarge {
                size: text.len(),
                limit: MAX_CONNECTION_BYTES,
            });
        }
        let v: serde_json::Value = if json {
            serde_json::from_str(text).map_err(|e| DefinitionError::Syntax {
                format: "JSON",
                reason: e.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|e| DefinitionError::Syntax {
                format: "TOML",
                reason: e.message().to_owned(),
            })?
        };
        Self::from_value(v)
    }

    /// Deserializes (strictly) and checks a definition, whatever its origin.
    fn from_value(v: serde_json::Value) -> Result<ConnectionDef, DefinitionError> {
        let def: ConnectionDef = serde_path_to_error::deserialize(v).map_err(|e| {
            let field = e.path().to_string();
            DefinitionError::Invalid(vec![FieldError {
                field: if field == "." { String::new() } else { field },
                message: e.into_inner().to_string(),
            }])
        })?;
        let mut c = Checker::default();
        c.at("auth", |c| def.auth.check(c));
        c.finish()?;
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_path_safe_and_keys_cannot_be_source_ids() {
        assert!(ConnectionName::parse("whoop-1").is_ok());
        for bad in ["", "-x", "Whoop", "a:b", "a/b", &"x".repeat(64)] {
            assert!(ConnectionName::parse(bad).is_err(), "{bad:?}");
        }
        let k = ConnectionName::parse("whoop").unwrap().token_key();
        assert!(super::super::SourceId::parse(&k).is_err());
    }

    #[test]
    fn definitions_are_strict_and_refuse_node_local_secrets() {
        let ok = br#"{"auth": {"type": "bearer", "token": "secret:t"}}"#;
        assert!(ConnectionDef::parse_untrusted(ok).is_ok());
        let unknown = br#"{"auth": {"type": "bearer", "token": "secret:t"}, "x": 1}"#;
        let e = ConnectionDef::parse_untrusted(unknown).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        let env = br#"{"auth": {"type": "bearer", "token": "env:HOME"}}"#;
        let e = ConnectionDef::parse_untrusted(env).unwrap_err();
        assert_eq!(e.fields()[0].field, "auth.token", "{e}");
        let bad = br#"{"auth": {"type": "basic", "username": "a:b", "password": "secret:p"}}"#;
        let e = ConnectionDef::parse_untrusted(bad).unwrap_err();
        assert_eq!(e.fields()[0].field, "auth.username", "{e}");
    }

    #[test]
    fn a_source_names_a_connection_or_has_inline_auth_not_both() {
        let base = "id = \"a\"\nkind = \"json\"\nurl = \"https://api.example/x\"\nrecords = \"$[*]\"\nkey = { field = \"id\" }\n";
        let def = super::super::SourceDef::parse_toml(&format!("{base}connection = \"whoop\"\n"))
            .unwrap();
        assert_eq!(
            def.common.connection.as_ref().map(|c| c.as_str()),
            Some("whoop")
        );
        let back = super::super::SourceDef::from_value(def.to_value()).unwrap();
        assert_eq!(back, def);
        let both = format!(
            "{base}connection = \"whoop\"\n[auth]\ntype = \"bearer\"\ntoken = \"secret:t\"\n"
        );
        let e = super::super::SourceDef::parse_toml(&both).unwrap_err();
        assert_eq!(e.fields()[0].field, "connection", "{e}");
        let bad = format!("{base}connection = \"Who op\"\n");
        let e = super::super::SourceDef::parse_toml(&bad).unwrap_err();
        assert!(
            e.to_string().starts_with("connection: connection name"),
            "{e}"
        );
    }

    /// The example in docs/sources.md (`## Connections`) is a valid connection and source.
    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../../docs/sources.md");
        let (_, section) = doc.split_once("## Connections").unwrap();
        let section = section.split("\n## ").next().unwrap();
        let block = |fence: &str| {
            let (_, rest) = section.split_once(fence).unwrap();
            rest.split_once("```").unwrap().0.to_owned()
        };
        let sh = block("```sh\n");
        let (_, body) = sh.split_once("connections/whoop\" -d '").unwrap();
        let body = body.rsplit_once('\'').unwrap().0;
        ConnectionDef::parse_untrusted(body.as_bytes()).unwrap();
        let def = super::super::SourceDef::parse_toml(&block("```toml\n")).unwrap();
        assert_eq!(def.common.connection.unwrap().as_str(), "whoop");
    }
}
