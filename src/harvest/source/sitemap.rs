//! The `sitemap` source kind: sitemaps (or sitemap indexes) whose pages are extracted as HTML.

use serde::{Deserialize, Serialize};
use url::Url;

use super::error::Checker;
use super::patterns::Pattern;
use super::record_spec::RecordSpec;
use super::session::SessionSpec;
use super::values::HttpUrl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitemapSource {
    /// Sitemap or sitemap index URLs (1–100).
    pub sitemaps: Vec<HttpUrl>,
    /// When non-empty, a page URL must match one of these regexes.
    #[serde(default)]
    pub include: Vec<Pattern>,
    /// Page URLs matching any of these regexes are skipped.
    #[serde(default)]
    pub exclude: Vec<Pattern>,
    /// Most page URLs taken in one run.
    #[serde(default = "default_max_urls")]
    pub max_urls: u32,
    /// Most nested sitemap indexes followed (an index pointing to an index).
    #[serde(default = "default_max_index_depth")]
    pub max_index_depth: u32,
    /// The records on each listed page.
    pub extract: RecordSpec,
    /// How a lost site session is noticed and renewed.
    #[serde(default, skip_serializing_if = "SessionSpec::is_default")]
    pub session: SessionSpec,
}

fn default_max_urls() -> u32 {
    10_000
}

fn default_max_index_depth() -> u32 {
    2
}

impl SitemapSource {
    /// Whether a page URL listed in a sitemap passes include / exclude.
    pub fn accepts(&self, u: &Url) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.get().is_match(u.as_str())))
            && !self.exclude.iter().any(|p| p.get().is_match(u.as_str()))
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            (1..=100).contains(&self.sitemaps.len()),
            "sitemaps",
            "list 1 to 100 URLs",
        );
        c.check(
            (1..=1_000_000).contains(&self.max_urls),
            "max_urls",
            "use 1 to 1000000",
        );
        c.check(self.max_index_depth <= 5, "max_index_depth", "use 0 to 5");
        c.at("extract", |c| self.extract.check(c));
        c.at("session", |c| self.session.check(c));
    }
}
