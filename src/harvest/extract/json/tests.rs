//! JSON extraction: cursor (`next_token`) and Link-header paging, page/offset paging,
//! windows, empty results, bad records, legacy charsets, garbage.

use super::*;
use crate::harvest::source::{SourceDef, SourceSpec};
use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

fn json_source(v: serde_json::Value) -> JsonSource {
    match SourceDef::parse_json(&serde_json::to_vec(&v).unwrap())
        .unwrap()
        .spec
    {
        SourceSpec::Json(j) => j,
        _ => unreachable!(),
    }
}

fn permits() -> JsonSource {
    match SourceDef::parse_json(&fixture("sources/api.json"))
        .unwrap()
        .spec
    {
        SourceSpec::Json(j) => j,
        _ => unreachable!(),
    }
}

fn items(pagination: serde_json::Value) -> JsonSource {
    json_source(json!({
        "id": "items", "kind": "json", "url": "https://api.example/v1/items?sort=sku",
        "records": "$[*]", "key": {"field": "sku"}, "pagination": pagination, "max_pages": 5
    }))
}

#[test]
fn cursor_paging_with_a_time_window() {
    let src = permits();
    let spec = src.window.clone().unwrap();
    let now = datetime!(2024-03-02 00:00:00 UTC);
    let w = TimeWindow::since_last_run(&spec, Some(datetime!(2024-03-01 00:00:00 UTC)), now);
    assert_eq!(
        w.start,
        datetime!(2024-02-29 23:55:00 UTC),
        "5 minutes of overlap"
    );
    let first = first_request(&src, Some(w)).unwrap();
    assert_eq!(
        first.url.as_str(),
        "https://api.example/v2/permits?limit=100&updated_since=2024-02-29T23%3A55%3A00Z&updated_until=2024-03-02T00%3A00%3A00Z"
    );

    let p1 = extract_json_page(
        &fixture("api/permits_p1.json"),
        &[("Content-Type", "application/json")],
        &src,
        &first.state,
    )
    .unwrap();
    let keys: Vec<_> = p1.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["P-2024-0001", "P-2024-0002", "P-2024-0003"]);
    assert_eq!(
        p1.records[0].fields["applicant"],
        json!({"name": "Hélène Dupré"})
    );
    assert!(p1.warnings.is_empty());
    let next = p1.next.unwrap();
    assert_eq!(next.state.cursor.as_deref(), Some("eyJvZmZzZXQiOjN9"));
    assert_eq!(next.state.page, 1);
    assert!(
        next.url.as_str().ends_with("&next_token=eyJvZmZzZXQiOjN9"),
        "{}",
        next.url
    );
    assert!(
        next.url
            .as_str()
            .contains("updated_since=2024-02-29T23%3A55%3A00Z"),
        "window is kept"
    );

    let p2 = extract_json_page(&fixture("api/permits_p2.json"), &[], &src, &next.state).unwrap();
    assert_eq!(p2.records.len(), 1);
    assert_eq!(p2.next, None, "a null next_token ends the run");
    assert_eq!(p2.warnings.len(), 1);
    assert!(
        p2.warnings[0]
            .message
            .contains("key field \"id\" is missing"),
        "{:?}",
        p2.warnings
    );

    // First run: the initial lookback.
    let w = TimeWindow::since_last_run(&spec, None, now);
    assert_eq!(w.start, datetime!(2024-02-24 00:00:00 UTC));
    assert_eq!(
        first_request(&src, None).unwrap_err().kind(),
        ErrorKind::Internal
    );
}

#[test]
fn link_header_paging() {
    let src = items(json!({"type": "link_header"}));
    let first = first_request(&src, None).unwrap();
    let headers = [
        ("content-type", "application/json; charset=utf-8"),
        (
            "Link",
            r#"<https://api.example/v1/items?sort=sku&page=2>; rel="next", <https://api.example/v1/items?sort=sku&page=7>; rel="last""#,
        ),
    ];
    let p = extract_json_page(
        &fixture("api/items_link_p1.json"),
        &headers,
        &src,
        &first.state,
    )
    .unwrap();
    assert_eq!(p.records.len(), 3);
    assert_eq!(p.records[2].fields["name"], json!("Gizmo – deluxe"));
    assert_eq!(
        p.next.as_ref().unwrap().url.as_str(),
        "https://api.example/v1/items?sort=sku&page=2"
    );

    // Relative targets resolve against the request; other origins are refused.
    let rel = [("link", "</v1/items?page=3>; rel=next")];
    let p = extract_json_page(b"[]", &rel, &src, &first.state).unwrap();
    assert_eq!(
        p.next.unwrap().url.as_str(),
        "https://api.example/v1/items?page=3"
    );
    let evil = [("link", "<https://evil.example/steal>; rel=next")];
    let p = extract_json_page(b"[]", &evil, &src, &first.state).unwrap();
    assert_eq!(p.next, None);
    assert!(p.warnings[0].message.contains("leaves the source's origin"));
    // No Link header: the last page.
    assert_eq!(
        extract_json_page(b"[]", &[], &src, &first.state)
            .unwrap()
            .next,
        None
    );
}

#[test]
fn next_link_in_body_and_loop_guard() {
    let src = items(json!({"type": "next_link", "path": "$.links.next"}));
    let src = JsonSource {
        records: crate::harvest::source::JsonPathExpr::parse("$.data").unwrap(),
        ..src
    };
    let first = first_request(&src, None).unwrap();
    let body = br#"{"data": [{"sku": 1}], "links": {"next": "?sort=sku&cursor=2"}}"#;
    let p = extract_json_page(body, &[], &src, &first.state).unwrap();
    assert_eq!(
        p.records[0].key, "1",
        "a path selecting one array takes its elements"
    );
    let next = p.next.unwrap();
    assert_eq!(
        next.url.as_str(),
        "https://api.example/v1/items?sort=sku&cursor=2"
    );
    let p = extract_json_page(body, &[], &src, &next.state).unwrap();
    assert_eq!(p.next, None);
    assert!(p.warnings[0].message.contains("is this page"));
}

#[test]
fn page_and_offset_paging_stop_on_short_pages_and_max_pages() {
    let src = items(json!({"type": "page", "param": "page", "size_param": "per_page", "size": 2}));
    let first = first_request(&src, None).unwrap();
    assert_eq!(
        first.url.as_str(),
        "https://api.example/v1/items?sort=sku&page=1&per_page=2"
    );
    let two = br#"[{"sku":"a"},{"sku":"b"}]"#;
    let p = extract_json_page(two, &[], &src, &first.state).unwrap();
    assert_eq!(
        p.next.as_ref().unwrap().url.as_str(),
        "https://api.example/v1/items?sort=sku&page=2&per_page=2"
    );
    assert_eq!(
        extract_json_page(br#"[{"sku":"c"}]"#, &[], &src, &p.next.unwrap().state)
            .unwrap()
            .next,
        None
    );

    let src =
        items(json!({"type": "offset", "param": "offset", "limit_param": "limit", "limit": 2}));
    let mut state = first_request(&src, None).unwrap().state;
    let mut pages = 0;
    loop {
        let p = extract_json_page(two, &[], &src, &state).unwrap();
        pages += 1;
        match p.next {
            Some(n) => {
                assert_eq!(n.state.offset, state.offset + 2);
                state = n.state;
            }
            None => {
                assert!(p.warnings[0].message.contains("max_pages = 5"));
                break;
            }
        }
    }
    assert_eq!(pages, 5);
    assert!(
        state.url.as_str().ends_with("offset=8&limit=2"),
        "{}",
        state.url
    );
}

#[test]
fn empty_results_as_configured() {
    let mut src = items(json!({"type": "none"}));
    let first = first_request(&src, None).unwrap();
    let p = extract_json_page(b"[]", &[], &src, &first.state).unwrap();
    assert!(p.records.is_empty());
    src.on_empty = OnEmpty::Error;
    let e = extract_json_page(b"[]", &[], &src, &first.state).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("records path $[*] matched nothing"),
        "{e}"
    );
}

#[test]
fn bad_bodies_and_records() {
    let src = items(json!({"type": "none"}));
    let st = first_request(&src, None).unwrap().state;
    let e = extract_json_page(b"{\"a\": ", &[], &src, &st).unwrap_err();
    assert!(
        matches!(e, JsonError::Parse { .. })
            && e.to_string()
                .starts_with("https://api.example/v1/items?sort=sku: response is not valid JSON"),
        "{e}"
    );
    let p = extract_json_page(
        br#"[1, {"sku": {"x": 1}}, {"sku": "ok"}, null]"#,
        &[],
        &src,
        &st,
    )
    .unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
    // BOM, and an ISO-8859-1 API.
    let p = extract_json_page(b"\xef\xbb\xbf[{\"sku\": \"b\"}]", &[], &src, &st).unwrap();
    assert_eq!(p.records[0].key, "b");
    let p = extract_json_page(
        b"[{\"sku\": \"caf\xe9\"}]",
        &[("Content-Type", "application/json; charset=ISO-8859-1")],
        &src,
        &st,
    )
    .unwrap();
    assert_eq!(p.records[0].key, "café");
    // serde_json's recursion limit turns a deeply nested body into an error, not a crash.
    let deep = "[".repeat(100_000);
    assert!(extract_json_page(deep.as_bytes(), &[], &src, &st).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..500), link in "\\PC{0,80}") {
        let src = permits();
        let st = first_request(&src, Some(TimeWindow { start: datetime!(2024-01-01 0:00 UTC), end: datetime!(2024-01-02 0:00 UTC) })).unwrap().state;
        let _ = extract_json_page(&body, &[("link", &link)], &src, &st);
    }

    #[test]
    fn mutated_fixture_never_panics(at in any::<usize>(), b in any::<u8>()) {
        let mut body = fixture("api/permits_p1.json");
        let i = at % body.len();
        body[i] = b;
        let src = permits();
        let st = first_request(&src, Some(TimeWindow { start: datetime!(2024-01-01 0:00 UTC), end: datetime!(2024-01-02 0:00 UTC) })).unwrap().state;
        if let Ok(p) = extract_json_page(&body, &[], &src, &st) {
            for r in p.records {
                prop_assert!(!r.key.is_empty());
            }
        }
    }
}
