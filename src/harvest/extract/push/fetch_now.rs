//! "Fetch resource X of json source Y now": the request shape and where it may point.
//!
//! A tenant asks for one resource of a configured JSON source out of schedule (a webhook
//! said it changed). The resource is a reference resolved against the source's URL and
//! must stay on the source's origin, since the fetch carries the source's credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ErrorKind;
use crate::harvest::limits::MAX_URL_BYTES;
use crate::harvest::source::{JsonSource, SourceId};
use crate::harvest::urls;

/// The request body, e.g. `{"source": "permits-api", "resource": "permits/P-2024-0001"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchNow {
    /// A source of kind `json` of the calling tenant.
    pub source: SourceId,
    /// Path (relative to the source URL, or absolute on its origin), with optional query.
    pub resource: String,
    /// Extra query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchNowError {
    #[error("fetch request is not valid: {0}")]
    Invalid(String),
    #[error("resource {resource:?} does not resolve to an http(s) URL against {base}")]
    BadResource { resource: String, base: String },
    #[error("resource {url} is not on the source's origin {origin}")]
    OtherOrigin { url: String, origin: String },
}

impl FetchNowError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl FetchNow {
    pub fn parse_json(body: &[u8]) -> Result<FetchNow, FetchNowError> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(
            |e| {
                let path = e.path().to_string();
                FetchNowError::Invalid(if path == "." {
                    e.into_inner().to_string()
                } else {
                    format!("{path}: {}", e.into_inner())
                })
            },
        )
    }

    /// The URL to fetch for this request on `src`.
    pub fn resolve(&self, src: &JsonSource) -> Result<Url, FetchNowError> {
        let base = src.url.url();
        let bad = || FetchNowError::BadResource {
            resource: self.resource.chars().take(200).collect(),
            base: base.to_string(),
        };
        if self.resource.trim().is_empty() || self.resource.len() > MAX_URL_BYTES {
            return Err(bad());
        }
        let mut u = urls::resolve(base, &self.resource).ok_or_else(bad)?;
        if !urls::same_origin(&u, base) {
            return Err(FetchNowError::OtherOrigin {
                url: u.to_string(),
                origin: base.origin().ascii_serialization(),
            });
        }
        if !self.params.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in &self.params {
                if k.is_empty() {
                    return Err(FetchNowError::Invalid(
                        "params: empty parameter name".into(),
                    ));
                }
                q.append_pair(k, v);
            }
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::{SourceDef, SourceSpec};

    fn src() -> JsonSource {
        let t = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/harvest/sources/api.json"
        ))
        .unwrap();
        match SourceDef::parse_json(&t).unwrap().spec {
            SourceSpec::Json(j) => j,
            _ => unreachable!(),
        }
    }

    #[test]
    fn resolves_on_the_source_origin() {
        let r = FetchNow::parse_json(
            br#"{"source": "permits-api", "resource": "permits/P-1", "params": {"full": "1"}}"#,
        )
        .unwrap();
        assert_eq!(
            r.resolve(&src()).unwrap().as_str(),
            "https://api.example/v2/permits/P-1?full=1"
        );
        let r = FetchNow {
            resource: "/v3/x?y=1#f".into(),
            ..r
        };
        assert_eq!(
            r.resolve(&src()).unwrap().as_str(),
            "https://api.example/v3/x?y=1&full=1"
        );
        for evil in [
            "https://evil.example/x",
            "//evil.example/x",
            "http://api.example/x",
        ] {
            let r = FetchNow {
                resource: evil.into(),
                params: BTreeMap::new(),
                ..r.clone()
            };
            assert!(
                matches!(r.resolve(&src()), Err(FetchNowError::OtherOrigin { .. })),
                "{evil}"
            );
        }
        let r = FetchNow {
            resource: "javascript:alert(1)".into(),
            ..r
        };
        assert!(matches!(
            r.resolve(&src()),
            Err(FetchNowError::BadResource { .. })
        ));
    }

    #[test]
    fn request_shape_is_strict() {
        let e = FetchNow::parse_json(br#"{"source": "Bad Id", "resource": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("source: source id"), "{e}");
        let e =
            FetchNow::parse_json(br#"{"source": "a", "resource": "x", "now": true}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `now`"), "{e}");
        assert!(FetchNow::parse_json(b"[").is_err());
    }
}
