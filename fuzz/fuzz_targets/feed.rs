//! The feed extractor (RSS, Atom, JSON Feed through feed-rs) with the news fixture's
//! definition, keyed by id or by link. Properties: bounded output, clean unique keys,
//! links are http(s).
#![no_main]

use std::sync::LazyLock;

use gleaner::harvest::extract::feed::extract_feed;
use gleaner::harvest::source::{FeedKey, FeedSource};
use gleaner::harvest::SourceSpec;
use gleaner_fuzz::{
    check_records, check_unique_keys, check_warnings, content_type, def_toml, split,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use url::Url;

static NEWS: LazyLock<FeedSource> = LazyLock::new(|| {
    match def_toml(include_str!(
        "../../tests/fixtures/harvest/sources/news.toml"
    )) {
        SourceSpec::Feed(s) => s,
        other => panic!("feed fixture is {}", other.kind()),
    }
});
static BY_LINK: LazyLock<FeedSource> = LazyLock::new(|| FeedSource {
    key: FeedKey::Link,
    include_content: false,
    ..NEWS.clone()
});
static URL: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://city.example/news.rss").expect("literal URL"));

fuzz_target!(|data: &[u8]| {
    let Some((opt, body)) = split(data) else {
        return;
    };
    let src = if opt & 4 == 0 { &*NEWS } else { &*BY_LINK };
    let ct = content_type(opt, "application/rss+xml");
    let Ok(page) = extract_feed(&URL, body, ct.as_deref(), src) else {
        return;
    };
    check_records(&page.records);
    check_unique_keys(&page.records);
    check_warnings(&page.warnings);
    for r in &page.records {
        if let Some(Value::String(l)) = r.fields.get("link") {
            let u = Url::parse(l).unwrap_or_else(|e| panic!("link {l:?}: {e}"));
            assert!(matches!(u.scheme(), "http" | "https"), "link {l}");
        }
        if !src.include_content {
            assert!(!r.fields.contains_key("content"), "content kept");
        }
    }
});
