//! Validated, path-safe tenant ids.
//!
//! A [`TenantId`] is checked once, at the edge (HTTP path, CLI flag, config), and is the
//! only thing a tenant's file path is ever built from: lowercase ASCII letters, digits and
//! '-', 1–63 characters, not starting with '-'. That alphabet cannot express `..`, `/`, NUL
//! or anything a file system treats specially, so no later check is needed.

use std::fmt;

use crate::error::ErrorKind;

/// Longest accepted tenant id; also a DNS label's limit, so ids fit in host names and labels.
pub const MAX_LEN: usize = 63;

/// A tenant id that has passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a tenant id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("tenant id is empty; use 1-63 characters from a-z, 0-9 and '-'")]
    Empty,
    #[error("tenant id is {0} characters long; the limit is 63")]
    TooLong(usize),
    #[error("tenant id must not start with '-'")]
    LeadingDash,
    #[error(
        "tenant id contains {0:?} at byte {1}; only lowercase letters a-z, digits 0-9 and '-' are allowed"
    )]
    BadChar(char, usize),
}

impl TenantIdError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, TenantIdError> {
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        let chars = s.chars().count();
        if chars > MAX_LEN {
            return Err(TenantIdError::TooLong(chars));
        }
        if let Some((i, c)) = s
            .char_indices()
            .find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(TenantIdError::BadChar(c, i));
        }
        if s.starts_with('-') {
            return Err(TenantIdError::LeadingDash);
        }
        Ok(TenantId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// File name of this tenant's database, e.g. `acme.db`.
    pub fn db_file_name(&self) -> String {
        format!("{}.db", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_simple_ids() {
        for ok in ["a", "acme", "acme-2", "0", "x".repeat(63).as_str()] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_path_tricks_and_bad_shapes() {
        assert_eq!(TenantId::parse(""), Err(TenantIdError::Empty));
        assert_eq!(TenantId::parse(".."), Err(TenantIdError::BadChar('.', 0)));
        assert_eq!(TenantId::parse("a/b"), Err(TenantIdError::BadChar('/', 1)));
        assert_eq!(TenantId::parse("Acme"), Err(TenantIdError::BadChar('A', 0)));
        assert_eq!(TenantId::parse("a\0"), Err(TenantIdError::BadChar('\0', 1)));
        assert_eq!(TenantId::parse("-a"), Err(TenantIdError::LeadingDash));
        assert_eq!(
            TenantId::parse(&"x".repeat(64)),
            Err(TenantIdError::TooLong(64))
        );
        assert_eq!(TenantId::parse("é"), Err(TenantIdError::BadChar('é', 0)));
    }

    proptest! {
        #[test]
        fn accepted_ids_are_safe_file_names(s in "\\PC{0,80}") {
            if let Ok(id) = TenantId::parse(&s) {
                let name = id.db_file_name();
                prop_assert!(!name.contains('/') && !name.contains('\0') && !name.contains(".."));
                prop_assert!(id.as_str().len() <= MAX_LEN && !id.as_str().is_empty());
                prop_assert!(std::path::Path::new(&name).components().count() == 1);
            }
        }
    }
}
