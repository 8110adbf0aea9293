//! The JSON API extractor with the permits fixture (cursor paging in a time window) and
//! with next-link and Link-header paging. With option bit 2 set, the input's first line is
//! the response's `Link` header. Properties: bounded output, clean keys, and a next
//! request never leaves the source's origin (the fetch stage attaches credentials to it).
#![no_main]

use std::sync::LazyLock;

use gleaner::harvest::extract::json::{extract_json_page, first_request, PageState, TimeWindow};
use gleaner::harvest::source::{JsonSource, Pagination};
use gleaner::harvest::urls::same_origin;
use gleaner::harvest::SourceSpec;
use gleaner_fuzz::{check_records, check_warnings, content_type, def_json, split};
use libfuzzer_sys::fuzz_target;

fn json(spec: SourceSpec) -> JsonSource {
    match spec {
        SourceSpec::Json(s) => s,
        other => panic!("JSON fixture is {}", other.kind()),
    }
}

static PERMITS: LazyLock<JsonSource> = LazyLock::new(|| {
    json(def_json(include_str!(
        "../../tests/fixtures/harvest/sources/api.json"
    )))
});
static NEXT_LINK: LazyLock<JsonSource> = LazyLock::new(|| {
    json(def_json(
        r#"{"id": "items", "kind": "json", "url": "https://api.example/v1/items?limit=50",
            "records": "$.data", "key": {"fields": ["/meta/id", "name"]},
            "on_empty": "error", "max_pages": 3,
            "pagination": {"type": "next_link", "path": "$.links.next"}}"#,
    ))
});
static LINK_HEADER: LazyLock<JsonSource> = LazyLock::new(|| JsonSource {
    pagination: Pagination::LinkHeader,
    ..NEXT_LINK.clone()
});
static OFFSET: LazyLock<JsonSource> = LazyLock::new(|| JsonSource {
    pagination: Pagination::Offset {
        param: "offset".into(),
        limit_param: Some("limit".into()),
        limit: 2,
    },
    ..NEXT_LINK.clone()
});

fn state(src: &JsonSource, page: u32) -> PageState {
    let window = src.window.as_ref().map(|_| TimeWindow {
        start: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("literal time"),
        end: time::OffsetDateTime::from_unix_timestamp(1_700_086_400).expect("literal time"),
    });
    let first = first_request(src, window).expect("fixture window is given");
    PageState {
        page,
        ..first.state
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((opt, rest)) = split(data) else {
        return;
    };
    let src = match opt >> 3 & 3 {
        0 => &*PERMITS,
        1 => &*NEXT_LINK,
        2 => &*LINK_HEADER,
        _ => &*OFFSET,
    };
    let (link, body) = match (opt & 4 != 0, rest.iter().position(|&b| b == b'\n')) {
        (true, Some(i)) => (std::str::from_utf8(&rest[..i]).ok(), &rest[i + 1..]),
        _ => (None, rest),
    };
    let ct = content_type(opt, "application/json");
    let mut headers = Vec::new();
    if let Some(ct) = &ct {
        headers.push(("Content-Type", ct.as_str()));
    }
    if let Some(l) = link {
        headers.push(("Link", l));
    }
    let st = state(src, u32::from(opt >> 5 & 1));
    let Ok(page) = extract_json_page(body, &headers, src, &st) else {
        return;
    };
    check_records(&page.records);
    check_warnings(&page.warnings);
    if let Some(next) = &page.next {
        assert!(
            same_origin(&next.url, src.url.url()),
            "next request leaves the origin: {}",
            next.url
        );
        assert_eq!(next.url, next.state.url);
        assert_ne!(next.url, st.url, "next request is this one");
        assert!(next.state.page < src.max_pages);
    }
});
