//! The `json` source kind: an API endpoint, where its records are, and how it pages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::incremental::Incremental;
use super::patterns::JsonPathExpr;
use super::record_spec::KeySpec;
use super::values::{HttpUrl, HumanDuration};

/// Placeholder in `params` values replaced by the window start.
pub const START: &str = "{start}";
/// Placeholder in `params` values replaced by the window end.
pub const END: &str = "{end}";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSource {
    /// The endpoint; query parameters may be written here or in `params`.
    pub url: HttpUrl,
    /// Query parameters added to every request; values may contain `{start}` / `{end}`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// JSONPath of the records, e.g. `$.data[*]`. A path that selects a single array
    /// takes that array's elements.
    pub records: JsonPathExpr,
    /// The record key; a name starting with '/' is a JSON Pointer (`/meta/id`).
    pub key: KeySpec,
    /// What a first page without records means.
    #[serde(default)]
    pub on_empty: OnEmpty,
    #[serde(default)]
    pub pagination: Pagination,
    /// Time window sent as `{start}` / `{end}` parameters.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// A cursor kept between runs (the largest `updated_at`, or the provider's token), so
    /// a run asks only for what changed since the last one that succeeded.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// Most pages fetched in one run (1–100000).
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
}

fn default_max_pages() -> u32 {
    1000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    /// No records is a valid answer.
    #[default]
    Empty,
    /// No records on the first page is an error (the path is probably wrong).
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request per run.
    #[default]
    None,
    /// The body holds the next page's URL at `path` (absolute or relative).
    NextLink { path: JsonPathExpr },
    /// The `Link` header's `rel="next"` target (RFC 8288).
    LinkHeader,
    /// The body holds a token at `path` that is sent back as query parameter `param`.
    Cursor { path: JsonPathExpr, param: String },
    /// Page numbers in query parameter `param`, from `start`; paging stops at an empty page
    /// or at one shorter than `size`.
    Page {
        param: String,
        #[serde(default = "one")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
    /// Record offsets in query parameter `param`; stops at a page shorter than `limit`.
    Offset {
        param: String,
        #[serde(default)]
        limit_param: Option<String>,
        limit: u64,
    },
}

fn one() -> u64 {
    1
}

/// The time window a run asks for: from the last successful run (minus `overlap`) to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    #[serde(default)]
    pub format: TimeFormat,
    /// How far back the first run (no successful run yet) starts (at least 1m; any length,
    /// e.g. `400d`).
    #[serde(default = "default_lookback")]
    pub initial_lookback: HumanDuration,
    /// Re-asks for this much before the last run, for records that arrive late.
    #[serde(default)]
    pub overlap: Option<HumanDuration>,
}

fn default_lookback() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(86_400))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2024-03-01T10:00:00Z`
    #[default]
    Rfc3339,
    /// Seconds since 1970.
    Unix,
    /// Milliseconds since 1970.
    UnixMs,
    /// `2024-03-01` (the window start's day; the end's day).
    Date,
}

pub(super) fn check_param(c: &mut Checker, field: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name
            .chars()
            .any(|ch| ch.is_control() || matches!(ch, '&' | '=' | '#'));
    c.check(ok, field, "a query parameter name without '&', '=' or '#'");
}

impl JsonSource {
    fn uses_placeholders(&self) -> bool {
        self.params
            .values()
            .any(|v| v.contains(START) || v.contains(END))
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        for name in self.params.keys() {
            c.at("params", |c| check_param(c, name, name));
        }
        c.check(
            !self.url.url().as_str().contains("%7Bstart%7D")
                && !self.url.url().as_str().contains("%7Bend%7D"),
            "url",
            "put {start} / {end} in params, not in the URL",
        );
        match (&self.window, self.uses_placeholders()) {
            (Some(_), false) => c.err(
                "window",
                "no params value contains {start} or {end}; add e.g. params.since = \"{start}\"",
            ),
            (None, true) => c.err(
                "params",
                "{start} / {end} are used but no window is configured",
            ),
            _ => {}
        }
        if let Some(w) = &self.window {
            c.at("window", |c| {
                let minute = std::time::Duration::from_secs(60);
                c.duration_range("initial_lookback", Some(w.initial_lookback), minute, None);
            });
        }
        self.key.check(c, None, false);
        c.check(
            (1..=100_000).contains(&self.max_pages),
            "max_pages",
            "use 1 to 100000",
        );
        c.at("pagination", |c| match &self.pagination {
            Pagination::Cursor { param, .. } => check_param(c, "param", param),
            Pagination::Page {
                param,
                size_param,
                size,
                ..
            } => {
                check_param(c, "param", param);
                if let Some(p) = size_param {
                    check_param(c, "size_param", p);
                    c.check(size.is_some(), "size", "set size when size_param is set");
                }
                c.range("size", *size, 1, 100_000);
            }
            Pagination::Offset {
                param,
                limit_param,
                limit,
            } => {
                check_param(c, "param", param);
                if let Some(p) = limit_param {
                    check_param(c, "limit_param", p);
                }
                c.range("limit", Some(*limit), 1, 100_000);
            }
            Pagination::None | Pagination::NextLink { .. } | Pagination::LinkHeader => {}
        });
        let reserved: Vec<&str> = match &self.pagination {
            Pagination::Cursor { param, .. } => vec![param],
            Pagination::Page {
                param, size_param, ..
            } => [Some(param.as_str()), size_param.as_deref()]
                .into_iter()
                .flatten()
                .collect(),
            Pagination::Offset {
                param, limit_param, ..
            } => [Some(param.as_str()), limit_param.as_deref()]
                .into_iter()
                .flatten()
                .collect(),
            _ => vec![],
        };
        if let Some(inc) = &self.incremental {
            c.check(
                self.window.is_none(),
                "incremental",
                "use either window (from the last run's time) or incremental (from a cursor), not both",
            );
            let cursor_param = match &self.pagination {
                Pagination::Cursor { param, .. } => Some(param.as_str()),
                _ => None,
            };
            c.at("incremental", |c| inc.check(c, &reserved, cursor_param));
            c.check(
                !self.params.contains_key(inc.param()),
                "params",
                format!(
                    "{:?} is set by incremental; remove it from params",
                    inc.param()
                ),
            );
        }
        for p in reserved {
            c.check(
                !self.params.contains_key(p),
                "params",
                format!("{p:?} is set by pagination; remove it from params"),
            );
        }
    }
}
