//! Push payloads: JSON arrays, objects, NDJSON; caps; all-or-nothing errors.

use super::*;
use crate::harvest::source::{SourceDef, SourceSpec};
use proptest::prelude::*;
use serde_json::json;

fn src(extra: &str) -> PushSource {
    let t = format!(
        "id = \"p\"\nkind = \"push\"\nkey = {{ field = \"sku\" }}\nmax_records = 3\n{extra}"
    );
    match SourceDef::parse_toml(&t).unwrap().spec {
        SourceSpec::Push(p) => p,
        _ => unreachable!(),
    }
}

fn keys(r: &[ExtractedRecord]) -> Vec<&str> {
    r.iter().map(|r| r.key.as_str()).collect()
}

#[test]
fn arrays_objects_and_ndjson() {
    let s = src("");
    let r = parse_payload(
        br#"[{"sku": "a", "n": 1}, {"sku": "b"}]"#,
        Some("application/json"),
        &s,
    )
    .unwrap();
    assert_eq!(keys(&r), ["a", "b"]);
    assert_eq!(r[0].fields_value(), json!({"sku": "a", "n": 1}));
    assert_eq!(
        keys(&parse_payload(br#"{"sku": 7}"#, None, &s).unwrap()),
        ["7"]
    );
    let nd = b"{\"sku\": \"a\"}\n\n{\"sku\": \"b\"}\r\n{\"sku\": \"a\", \"v\": 2}\n";
    let r = parse_payload(nd, Some("application/x-ndjson"), &s).unwrap();
    assert_eq!(keys(&r), ["a", "b"], "the later 'a' replaces the earlier");
    assert_eq!(r[0].fields["v"], json!(2));
    // Auto-detected NDJSON without a content type, and a BOM.
    assert_eq!(
        parse_payload(b"\xef\xbb\xbf{\"sku\":1} {\"sku\":2}", None, &s)
            .unwrap()
            .len(),
        2
    );
    // An object with records inside.
    let s2 = src("records = \"$.items[*]\"");
    assert_eq!(
        keys(&parse_payload(br#"{"items": [{"sku": "x"}]}"#, None, &s2).unwrap()),
        ["x"]
    );
}

#[test]
fn one_bad_record_refuses_the_body() {
    let s = src("");
    let e = parse_payload(br#"[{"sku": "a"}, {"name": "no key"}]"#, None, &s).unwrap_err();
    assert_eq!(
        e,
        PushError::BadRecord {
            index: 1,
            reason: "key field \"sku\" is missing".into()
        }
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = parse_payload(br#"[{"sku": "a"}, 3]"#, None, &s).unwrap_err();
    assert!(e.to_string().starts_with("record 1: is a number"), "{e}");
    let e = parse_payload(
        b"{\"sku\": 1}\n{\"sku\": ",
        Some("application/x-ndjson"),
        &s,
    )
    .unwrap_err();
    assert!(matches!(e, PushError::Ndjson { line: 2, .. }), "{e}");
    assert!(matches!(
        parse_payload(b"\"text\"", None, &s),
        Err(PushError::NotRecords("a string"))
    ));
    assert!(matches!(
        parse_payload(b"", None, &s),
        Err(PushError::Json { .. })
    ));
    let json_only = src("format = \"json\"");
    assert!(matches!(
        parse_payload(b"{\"sku\":1} {\"sku\":2}", None, &json_only),
        Err(PushError::Json { .. })
    ));
}

#[test]
fn caps() {
    let s = src("max_body_bytes = 20");
    let e = parse_payload(&[b' '; 21], None, &s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    let e = parse_payload(
        br#"[{"sku":1},{"sku":2},{"sku":3},{"sku":4}]"#,
        None,
        &src(""),
    )
    .unwrap_err();
    assert_eq!(e, PushError::TooManyRecords { count: 4, limit: 3 });
}

proptest! {
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), nd in any::<bool>()) {
        let ct = if nd { Some("application/x-ndjson") } else { None };
        if let Ok(r) = parse_payload(&body, ct, &src("")) {
            prop_assert!(r.iter().all(|r| !r.key.is_empty()));
        }
    }

    #[test]
    fn json_ish_bodies_never_panic(body in "[\\[\\]{}\",:a-z0-9 \n]{0,200}") {
        let _ = parse_payload(body.as_bytes(), None, &src("records = \"$..sku\""));
    }
}
