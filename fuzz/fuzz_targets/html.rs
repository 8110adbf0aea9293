//! The HTML extractor with the registry fixture's definition (listing records, next links,
//! detail links, scope) and the sitemap fixture's record spec, on bytes decoded the way the
//! fetch stage decodes them. Properties: bounded output, clean keys, links in scope.
#![no_main]

use std::sync::LazyLock;

use gleaner::harvest::charset::decode_html;
use gleaner::harvest::extract::html::{extract_detail, extract_page, extract_records};
use gleaner::harvest::limits::MAX_LINKS_PER_PAGE;
use gleaner::harvest::source::{HtmlSource, RecordSpec};
use gleaner::harvest::SourceSpec;
use gleaner_fuzz::{
    check_records, check_unique_keys, check_warnings, content_type, def_toml, split,
};
use libfuzzer_sys::fuzz_target;
use url::Url;

static REGISTRY: LazyLock<HtmlSource> = LazyLock::new(|| {
    match def_toml(include_str!(
        "../../tests/fixtures/harvest/sources/registry.toml"
    )) {
        SourceSpec::Html(s) => s,
        other => panic!("registry fixture is {}", other.kind()),
    }
});
static PRODUCT: LazyLock<RecordSpec> = LazyLock::new(|| {
    match def_toml(include_str!(
        "../../tests/fixtures/harvest/sources/sitemap.toml"
    )) {
        SourceSpec::Sitemap(s) => s.extract,
        other => panic!("sitemap fixture is {}", other.kind()),
    }
});
static LIST_URL: LazyLock<Url> = LazyLock::new(|| {
    Url::parse("http://registre.example/app/list.jsp?sector=all&page=2").expect("literal URL")
});

fuzz_target!(|data: &[u8]| {
    let Some((opt, body)) = split(data) else {
        return;
    };
    let ct = content_type(opt, "text/html");
    let html = decode_html(body, ct.as_deref()).text;
    let src = &*REGISTRY;
    match opt >> 2 & 3 {
        0 | 1 => {
            if let Ok(p) = extract_page(&LIST_URL, &html, src) {
                check_records(&p.records);
                check_warnings(&p.warnings);
                assert!(p.next_links.len() <= MAX_LINKS_PER_PAGE);
                assert!(p.discovered_links.len() <= MAX_LINKS_PER_PAGE);
                check_unique_keys(&p.records);
                // One detail link per stored record, with that record's key.
                assert!(p.detail_links.len() <= p.records.len());
                for u in &p.discovered_links {
                    assert!(src.in_scope(u), "out-of-scope link {u}");
                }
                for u in p.next_links.iter().chain(&p.discovered_links) {
                    assert!(matches!(u.scheme(), "http" | "https"), "link {u}");
                    assert!(u.fragment().is_none(), "link with fragment {u}");
                }
                for d in &p.detail_links {
                    assert!(
                        p.records.iter().any(|r| r.key == d.key),
                        "detail link for no record"
                    );
                }
            }
        }
        2 => {
            if let Some(detail) = &src.extract.detail {
                if let Ok(d) = extract_detail(&LIST_URL, &html, detail) {
                    check_warnings(&d.warnings);
                    for k in d.fields.keys() {
                        assert!(detail.fields.contains_key(k), "unknown field {k}");
                    }
                }
            }
        }
        _ => {
            if let Ok(p) = extract_records(&LIST_URL, &html, &PRODUCT) {
                check_records(&p.records);
                check_unique_keys(&p.records);
                check_warnings(&p.warnings);
            }
        }
    }
});
