//! The `feed` source kind: RSS 2.0 / RSS 1.0 / Atom (and JSON Feed) documents.

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::values::HttpUrl;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    /// Feed URLs (1–100).
    pub feeds: Vec<HttpUrl>,
    /// Where entry keys come from.
    #[serde(default)]
    pub key: FeedKey,
    /// Keep entries' full content (can be large); summaries are always kept.
    #[serde(default = "yes")]
    pub include_content: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKey {
    /// RSS `guid` / Atom `id`, else the entry's link.
    #[default]
    Id,
    /// The entry's link, else its id (for feeds whose ids change on every edit).
    Link,
}

impl FeedSource {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            (1..=100).contains(&self.feeds.len()),
            "feeds",
            "list 1 to 100 URLs",
        );
    }
}
