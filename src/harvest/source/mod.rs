//! Source definitions: what a tenant configures about one source, and its validation.
//!
//! A definition is one flat object (JSON over the API, TOML in files) with a `kind` tag:
//!
//! ```toml
//! id = "company-registry"
//! kind = "html"
//! schedule = "0 3 * * *"
//! start_urls = ["https://registry.example/list.jsp"]
//! [extract]
//! record = "table#results tr.row"
//! key = { field = "reg_no" }
//! fields.reg_no = { selector = "td.reg" }
//! ```
//!
//! Common fields ([`Common`]) sit beside the kind's own ([`SourceSpec`]). serde cannot
//! combine `flatten` with `deny_unknown_fields`, so [`SourceDef::from_value`] splits the
//! object by key itself and deserializes each part strictly, with serde_path_to_error
//! naming the field of the first problem in each part. Selectors, regexes, JSONPaths, cron
//! expressions and URLs compile while deserializing (so an existing `SourceDef` always
//! works); [`SourceDef::validate`] then checks everything that spans fields or ranges and
//! reports all problems at once.

mod anomaly;
mod auth;
mod connection;
mod csv;
mod error;
mod feed;
mod html;
mod incremental;
mod json;
mod patterns;
mod policy;
mod push;
mod record_spec;
mod schedule;
mod session;
mod sitemap;
mod values;
mod webhook;

pub use self::anomaly::Guard;
pub use self::auth::Auth;
pub use self::connection::{ConnectionDef, ConnectionName, MAX_CONNECTION_BYTES};
pub use self::csv::CsvSource;
pub use self::error::{DefinitionError, FieldError};
pub use self::feed::{FeedKey, FeedSource};
pub use self::html::{HtmlSource, NextSpec, Scope};
pub use self::incremental::{CursorFormat, Incremental};
pub use self::json::{JsonSource, OnEmpty, Pagination, TimeFormat, WindowSpec, END, START};
pub use self::patterns::{CssSelector, DateFormat, JsonPathExpr, Pattern};
pub use self::policy::{History, Politeness};
pub use self::push::{PushFormat, PushSource};
pub use self::record_spec::{
    Conversion, ConvertOpts, DetailSpec, FieldSpec, FieldType, KeySpec, RecordSpec, Whitespace,
};
pub use self::schedule::Schedule;
pub use self::session::{SessionSpec, MAX_SESSION_RETRIES};
pub use self::sitemap::SitemapSource;
pub use self::values::{HttpUrl, HumanDuration, SecretRef, SourceId};
pub use self::webhook::{
    Encoding, EventSpec, HeaderFormat, Preset, Scheme, SignatureSpec, Signed, TimeUnit,
    TimestampAt, ID_PLACEHOLDER, MAX_EVENTS, MAX_REPLAY_CAPACITY,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::error::Checker;
use super::limits::MAX_DEFINITION_BYTES;

/// Fields every kind has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    pub id: SourceId,
    /// When to run: an interval (`15m`) or a cron expression (`0 3 * * *`, UTC). Absent:
    /// runs only when asked (and always for `push`, which is never fetched).
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// The source is stale (reported, alerted on) when no run succeeded for this long.
    #[serde(default)]
    pub freshness: Option<HumanDuration>,
    #[serde(default)]
    pub auth: Option<Auth>,
    /// The tenant connection whose credential the source uses instead of an inline `auth`
    /// (one token state for every source that names it).
    #[serde(default)]
    pub connection: Option<ConnectionName>,
    #[serde(default)]
    pub politeness: Politeness,
    #[serde(default)]
    pub history: History,
    /// The anomaly guard's bounds (on by default).
    #[serde(default)]
    pub guard: Guard,
}

/// The keys of [`Common`], which [`SourceDef::from_value`] routes to it.
const COMMON_KEYS: [&str; 8] = [
    "id",
    "schedule",
    "freshness",
    "auth",
    "connection",
    "politeness",
    "history",
    "guard",
];

/// The kind-specific part of a definition.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Html(HtmlSource),
    Json(JsonSource),
    Sitemap(SitemapSource),
    Feed(FeedSource),
    Csv(CsvSource),
    Push(PushSource),
}

/// The kind tags, in the order error messages list them.
pub const KINDS: [&str; 6] = ["html", "json", "sitemap", "feed", "csv", "push"];

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Html(_) => "html",
            SourceSpec::Json(_) => "json",
            SourceSpec::Sitemap(_) => "sitemap",
            SourceSpec::Feed(_) => "feed",
            SourceSpec::Csv(_) => "csv",
            SourceSpec::Push(_) => "push",
        }
    }

    fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            SourceSpec::Html(s) => serde_json::to_value(s),
            SourceSpec::Json(s) => serde_json::to_value(s),
            SourceSpec::Sitemap(s) => serde_json::to_value(s),
            SourceSpec::Feed(s) => serde_json::to_value(s),
            SourceSpec::Csv(s) => serde_json::to_value(s),
            SourceSpec::Push(s) => serde_json::to_value(s),
        }
    }
}

/// One source definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDef {
    pub common: Common,
    pub spec: SourceSpec,
}

/// Deserializes `v` as `T`, turning the first error into a [`FieldError`] with its path.
fn strict<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        FieldError {
            field: if field == "." { String::new() } else { field },
            message: e.into_inner().to_string(),
        }
    })
}

impl SourceDef {
    /// Parses, deserializes and validates a JSON definition (API bodies).
    pub fn parse_json(text: &[u8]) -> Result<SourceDef, DefinitionError> {
        check_size(text.len())?;
        let v: Value = serde_json::from_slice(text).map_err(|e| DefinitionError::Syntax {
            format: "JSON",
            reason: e.to_string(),
        })?;
        let def = SourceDef::from_value(v)?;
        def.validate()?;
        Ok(def)
    }

    /// Parses, deserializes and validates a TOML definition (files).
    pub fn parse_toml(text: &str) -> Result<SourceDef, DefinitionError> {
        check_size(text.len())?;
        let v: Value = toml::from_str(text).map_err(|e| DefinitionError::Syntax {
            format: "TOML",
            reason: e.message().to_owned() + &line_of(text, e.span()),
        })?;
        let def = SourceDef::from_value(v)?;
        def.validate()?;
        Ok(def)
    }

    /// Deserializes a definition from a JSON value (no semantic validation; call
    /// [`SourceDef::validate`]). Both the common part and the kind part are checked, so a
    /// definition with problems in both reports both.
    pub fn from_value(v: Value) -> Result<SourceDef, DefinitionError> {
        let one = |field: &str, message: String| {
            DefinitionError::Invalid(vec![FieldError {
                field: field.into(),
                message,
            }])
        };
        let Value::Object(mut rest) = v else {
            return Err(one(
                "",
                "a source definition must be an object / table".into(),
            ));
        };
        let kind = match rest.remove("kind") {
            Some(Value::String(k)) => k,
            Some(_) => {
                return Err(one(
                    "kind",
                    format!("must be a string, one of {}", KINDS.join(", ")),
                ))
            }
            None => {
                return Err(one(
                    "kind",
                    format!("missing; set kind to one of {}", KINDS.join(", ")),
                ))
            }
        };
        let mut common = Map::new();
        for k in COMMON_KEYS {
            if let Some(v) = rest.remove(k) {
                common.insert(k.to_owned(), v);
            }
        }
        let rest = Value::Object(rest);
        let mut errors = Vec::new();
        let common: Option<Common> = strict(Value::Object(common))
            .map_err(|e| errors.push(e))
            .ok();
        let spec = match kind.as_str() {
            "html" => strict(rest).map(SourceSpec::Html),
            "json" => strict(rest).map(SourceSpec::Json),
            "sitemap" => strict(rest).map(SourceSpec::Sitemap),
            "feed" => strict(rest).map(SourceSpec::Feed),
            "csv" => strict(rest).map(SourceSpec::Csv),
            "push" => strict(rest).map(SourceSpec::Push),
            other => Err(FieldError {
                field: "kind".into(),
                message: format!("unknown kind {other:?}; use one of {}", KINDS.join(", ")),
            }),
        }
        .map_err(|e| errors.push(e))
        .ok();
        match (common, spec) {
            (Some(common), Some(spec)) => Ok(SourceDef { common, spec }),
            _ => Err(DefinitionError::Invalid(errors)),
        }
    }

    /// The definition as one flat JSON object (what `from_value` reads back).
    pub fn to_value(&self) -> Value {
        // Our types serialize to plain JSON (strings, numbers, maps with string keys), so
        // these conversions cannot fail; an empty object stands in if that ever changes.
        let mut out = match serde_json::to_value(&self.common) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        out.insert("kind".into(), Value::String(self.spec.kind().into()));
        if let Ok(Value::Object(m)) = self.spec.to_value() {
            out.extend(m);
        }
        let mut v = Value::Object(out);
        drop_nulls(&mut v);
        v
    }

    pub fn id(&self) -> &SourceId {
        &self.common.id
    }

    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }

    /// Checks what deserialization cannot: ranges, cross-field rules, keys naming fields
    /// that exist. Every problem is reported, each naming its field.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let mut c = Checker::default();
        self.check(&mut c);
        c.finish()
    }

    /// [`SourceDef::validate`] for definitions from the tenant API: additionally refuses
    /// `env:` and `file:` secret references, which would let a tenant read the node's
    /// environment or files and send them to a server of its choosing.
    pub fn validate_untrusted(&self) -> Result<(), DefinitionError> {
        let mut c = Checker::default();
        self.check(&mut c);
        if let Some(a) = &self.common.auth {
            for (field, r) in a.secret_refs() {
                if r.is_node_local() {
                    c.at("auth", |c| c.err(&field, "only secret:NAME references are allowed in definitions sent over the API"));
                }
            }
        }
        if let SourceSpec::Push(PushSource {
            signature: Some(s), ..
        }) = &self.spec
        {
            if s.secret.is_node_local() {
                c.err(
                    "signature.secret",
                    "only secret:NAME references are allowed in definitions sent over the API",
                );
            }
        }
        c.finish()
    }

    fn check(&self, c: &mut Checker) {
        let cm = &self.common;
        let push = matches!(self.spec, SourceSpec::Push(_));
        if let Some(f) = cm.freshness {
            c.range("freshness", Some(f.secs()), 60, 366 * 86_400);
        }
        if push {
            c.check(
                cm.schedule.is_none(),
                "schedule",
                "push sources are not fetched; remove schedule",
            );
            c.check(
                cm.auth.is_none(),
                "auth",
                "push sources are not fetched; authenticate senders with signature",
            );
            c.check(
                cm.connection.is_none(),
                "connection",
                "push sources are not fetched; remove connection",
            );
        }
        c.check(
            cm.auth.is_none() || cm.connection.is_none(),
            "connection",
            "set either auth (inline) or connection (a tenant connection by name), not both",
        );
        if let Some(a) = &cm.auth {
            c.at("auth", |c| a.check(c));
        }
        c.at("politeness", |c| cm.politeness.check(c));
        c.at("history", |c| cm.history.check(c));
        c.at("guard", |c| cm.guard.check(c));
        match &self.spec {
            SourceSpec::Html(s) => s.check(c),
            SourceSpec::Json(s) => s.check(c),
            SourceSpec::Sitemap(s) => s.check(c),
            SourceSpec::Feed(s) => s.check(c),
            SourceSpec::Csv(s) => s.check(c),
            SourceSpec::Push(s) => s.check(c),
        }
    }
}

/// Removes null members everywhere: an absent optional field reads back the same, and TOML
/// has no null.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn check_size(n: usize) -> Result<(), DefinitionError> {
    if n > MAX_DEFINITION_BYTES {
        return Err(DefinitionError::TooLarge {
            size: n,
            limit: MAX_DEFINITION_BYTES,
        });
    }
    Ok(())
}

/// " (line N)" for a TOML error span, so the message points at the line to fix.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) if r.start <= text.len() => {
            let line = text.as_bytes()[..r.start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!(" (line {line})")
        }
        _ => String::new(),
    }
}

impl Serialize for SourceDef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SourceDef {
    /// Deserializes without semantic validation (call [`SourceDef::validate`]).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        SourceDef::from_value(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
