//! The `html` source kind: start URLs, crawl scope, next links and records.

use serde::{Deserialize, Serialize};
use url::Url;

use super::error::Checker;
use super::patterns::{CssSelector, Pattern};
use super::record_spec::RecordSpec;
use super::session::SessionSpec;
use super::values::HttpUrl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtmlSource {
    /// Where a run starts (1–100 URLs).
    pub start_urls: Vec<HttpUrl>,
    #[serde(default)]
    pub scope: Scope,
    /// How to find the next listing page.
    #[serde(default)]
    pub next: Option<NextSpec>,
    /// The records on each page.
    pub extract: RecordSpec,
    /// How a lost site session is noticed and renewed.
    #[serde(default, skip_serializing_if = "SessionSpec::is_default")]
    pub session: SessionSpec,
}

/// Which discovered links belong to the crawl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    /// Hosts in scope besides the start URLs' hosts (ignored when `prefix` is set).
    pub hosts: Vec<String>,
    /// When set, only URLs starting with this prefix are in scope.
    pub prefix: Option<HttpUrl>,
    /// When non-empty, a URL must match one of these regexes.
    pub include: Vec<Pattern>,
    /// A URL matching any of these regexes is out of scope.
    pub exclude: Vec<Pattern>,
    /// Link hops from a start URL that are followed (0 = start pages and their next pages).
    pub max_depth: u32,
    /// Most pages fetched in one run.
    pub max_pages: u32,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            hosts: Vec::new(),
            prefix: None,
            include: Vec::new(),
            exclude: Vec::new(),
            max_depth: 3,
            max_pages: 1000,
        }
    }
}

/// Next listing page: by selector, by `rel="next"`, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextSpec {
    /// Selector of the next link(s); the element's `href` (or its first `a[href]`).
    #[serde(default)]
    pub selector: Option<CssSelector>,
    /// Follow `<link rel="next">` and `<a rel="next">`.
    #[serde(default)]
    pub rel_next: bool,
}

impl HtmlSource {
    /// Whether `u` is in this source's crawl scope (host or prefix, include, exclude).
    pub fn in_scope(&self, u: &Url) -> bool {
        let s = &self.scope;
        let placed = match &s.prefix {
            Some(p) => u.as_str().starts_with(p.url().as_str()),
            None => u.host_str().is_some_and(|h| {
                self.start_urls
                    .iter()
                    .any(|s| s.url().host_str() == Some(h))
                    || s.hosts.iter().any(|x| x.eq_ignore_ascii_case(h))
            }),
        };
        placed
            && (s.include.is_empty() || s.include.iter().any(|p| p.get().is_match(u.as_str())))
            && !s.exclude.iter().any(|p| p.get().is_match(u.as_str()))
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            (1..=100).contains(&self.start_urls.len()),
            "start_urls",
            "list 1 to 100 URLs",
        );
        c.at("scope", |c| {
            let s = &self.scope;
            for (i, h) in s.hosts.iter().enumerate() {
                let ok = url::Host::parse(h).is_ok() && !h.contains(['/', ':']);
                c.check(
                    ok,
                    &format!("hosts[{i}]"),
                    "a host name such as \"www.example.org\"",
                );
            }
            c.check(s.max_depth <= 50, "max_depth", "use 0 to 50");
            c.check(
                (1..=1_000_000).contains(&s.max_pages),
                "max_pages",
                "use 1 to 1000000",
            );
            c.check(s.include.len() <= 100, "include", "at most 100 patterns");
            c.check(s.exclude.len() <= 100, "exclude", "at most 100 patterns");
        });
        for (i, u) in self.start_urls.iter().enumerate() {
            c.check(
                self.in_scope(u.url()),
                &format!("start_urls[{i}]"),
                format!("{u} is outside the crawl scope (scope.prefix / include / exclude)"),
            );
        }
        if let Some(n) = &self.next {
            c.check(
                n.selector.is_some() || n.rel_next,
                "next",
                "set next.selector, next.rel_next = true, or both",
            );
        }
        c.at("extract", |c| self.extract.check(c));
        c.at("session", |c| self.session.check(c));
    }
}
