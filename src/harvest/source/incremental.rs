//! The `incremental` key of json sources: the cursor a source keeps between runs, so a
//! second run asks only for what changed since the first.
//!
//! Two kinds: the largest value of a record field (`updated_at`), sent back on the next
//! run's requests minus a `lookback` for records that arrive late or share the last
//! timestamp; or a token the provider hands out (`next_sync_token`), the last one a run
//! saw. How the runtime keeps and commits it is in `harvest::runtime` (only a run that
//! succeeded completely moves it).

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::patterns::JsonPathExpr;
use super::values::HumanDuration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Incremental {
    /// The largest value of record field `field` (a name, or a JSON Pointer starting with
    /// '/'), sent as query parameter `param` minus `lookback` on the next run.
    MaxField {
        field: String,
        param: String,
        #[serde(default)]
        format: CursorFormat,
        #[serde(default)]
        lookback: Option<HumanDuration>,
    },
    /// The last non-empty value at `path` in a run's responses, sent as query parameter
    /// `param` on the next run. With cursor pagination on the same `param`, the next run
    /// simply starts at that cursor.
    Token { path: JsonPathExpr, param: String },
}

/// How a `max_field` value is read from records and written into the parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorFormat {
    /// `2024-03-01T10:00:00Z` (any offset is read; UTC is sent).
    #[default]
    Rfc3339,
    /// Seconds since 1970 (a number or a numeric string).
    Unix,
    /// Milliseconds since 1970.
    UnixMs,
    /// A plain number compared numerically (a sequence or version); no lookback.
    Number,
}

impl CursorFormat {
    pub fn is_time(self) -> bool {
        !matches!(self, CursorFormat::Number)
    }
}

impl Incremental {
    pub fn param(&self) -> &str {
        match self {
            Incremental::MaxField { param, .. } | Incremental::Token { param, .. } => param,
        }
    }

    /// What the stored cursor means; a cursor stored under another basis (the definition
    /// changed its field or path) is not used.
    pub fn basis(&self) -> String {
        match self {
            Incremental::MaxField { field, format, .. } => format!(
                "max_field:{field}:{}",
                serde_json::to_value(format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            Incremental::Token { path, .. } => format!("token:{}", path.as_str()),
        }
    }

    /// `reserved`: query parameters pagination sets; `cursor_param`: the cursor
    /// pagination's own (a token may resume it).
    pub(crate) fn check(&self, c: &mut Checker, reserved: &[&str], cursor_param: Option<&str>) {
        let param = self.param();
        super::json::check_param(c, "param", param);
        let resumes_cursor =
            matches!(self, Incremental::Token { .. }) && cursor_param == Some(param);
        c.check(
            resumes_cursor || !reserved.contains(&param),
            "param",
            format!("{param:?} is set by pagination; use another parameter name"),
        );
        if let Incremental::MaxField {
            field,
            format,
            lookback,
            ..
        } = self
        {
            c.check(
                !field.trim().is_empty() && field.len() <= 256,
                "field",
                "name the record field to take the largest value of, e.g. \"updated_at\" or \"/meta/updated\"",
            );
            c.check(
                format.is_time() || lookback.is_none(),
                "lookback",
                "a lookback needs a time format (rfc3339, unix or unix_ms); remove it for format = \"number\"",
            );
        }
    }
}
