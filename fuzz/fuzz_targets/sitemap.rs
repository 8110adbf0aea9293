//! The sitemap parser (plain and gzipped `<urlset>` / `<sitemapindex>`), with a small
//! decompression cap so gzip bombs are cheap to find. Properties: bounded entries, every
//! `loc` an absolute http(s) URL, the cap holds.
#![no_main]

use gleaner::harvest::extract::sitemap::parse_sitemap;
use gleaner::harvest::limits::MAX_SITEMAP_ENTRIES;
use gleaner_fuzz::{check_warnings, content_type, split};
use libfuzzer_sys::fuzz_target;
use url::Url;

/// Far below the real cap (64 MiB): a bomb must be refused, not inflated.
const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((opt, body)) = split(data) else {
        return;
    };
    let url = Url::parse("https://shop.example/sitemap_index.xml").expect("literal URL");
    let ct = content_type(opt, "application/xml");
    let Ok(map) = parse_sitemap(&url, body, ct.as_deref(), CAP) else {
        return;
    };
    assert!(
        map.entries.len() <= MAX_SITEMAP_ENTRIES,
        "{} entries",
        map.entries.len()
    );
    check_warnings(&map.warnings);
    for e in &map.entries {
        assert!(matches!(e.loc.scheme(), "http" | "https"), "loc {}", e.loc);
        assert!(e.loc.host_str().is_some(), "loc without host {}", e.loc);
    }
});
