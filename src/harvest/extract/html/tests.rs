//! HTML extraction against an old JSP registry (windows-1252, tag soup, unclosed cells).

use super::*;
use crate::harvest::charset::decode_html;
use crate::harvest::source::{SourceDef, SourceSpec};
use proptest::prelude::*;
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

fn source() -> HtmlSource {
    let text = std::fs::read_to_string(format!("{DIR}/sources/registry.toml")).unwrap();
    match SourceDef::parse_toml(&text).unwrap().spec {
        SourceSpec::Html(h) => h,
        _ => unreachable!(),
    }
}

/// A fixture decoded as the fetch stage would: the server sent no charset, the page's
/// `<meta http-equiv>` says windows-1252.
fn page(name: &str) -> String {
    let bytes = std::fs::read(format!("{DIR}/registry/{name}")).unwrap();
    let d = decode_html(&bytes, Some("text/html"));
    assert_eq!(d.encoding, encoding_rs::WINDOWS_1252);
    d.text.into_owned()
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn fixed_selectors_parse() {
    assert!(LINKS.is_some() && REL_LINKS.is_some() && BASE.is_some() && ANCHOR.is_some());
}

#[test]
fn listing_page_one() {
    let src = source();
    let url = u("http://registre.example/app/list.jsp?sector=all");
    let p = extract_page(&url, &page("list_p1.html"), &src).unwrap();

    let keys: Vec<_> = p.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["100234", "100235", "100236"]);
    assert_eq!(
        p.records[0].fields_value(),
        json!({
            "reg_no": "100234",
            "name": "Société Générale d’Études",
            "capital": 1234567.89,
            "registered": "1998-03-01",
            "active": true,
        })
    );
    assert_eq!(p.records[1].fields["name"], json!("Café de l’Opéra SARL"));
    assert_eq!(p.records[1].fields["active"], json!(false));
    assert_eq!(p.records[2].fields["capital"], json!(7500));

    // The row without a registration number (a required field) is rejected, not stored:
    // the page is an error for the run, so no stored version of it can look removed.
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.rejected.len(), 1, "{:?}", p.rejected);
    assert_eq!(p.rejected[0].record, Some(3));
    assert_eq!(p.rejected[0].key, None);
    assert!(p.rejected[0].reason.contains("required field \"reg_no\""));

    assert_eq!(
        p.next_links,
        vec![u("http://registre.example/app/list.jsp?sector=all&page=2")]
    );
    assert_eq!(p.detail_links.len(), 3);
    assert_eq!(p.detail_links[0].key, "100234");
    assert_eq!(
        p.detail_links[0].url.as_str(),
        "http://registre.example/app/fiche.jsp;jsessionid=A1B2C3?id=100234&from=list"
    );

    // In scope: the four detail links and the next page. Out: other hosts, mailto:,
    // javascript:, the excluded print version, the stylesheet (not a link to follow).
    let found: Vec<_> = p.discovered_links.iter().map(Url::as_str).collect();
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(found.contains(&"http://registre.example/app/fiche.jsp?id=0"));
    assert!(!found
        .iter()
        .any(|l| l.contains("print=1") || l.contains("ministere")));

    // Every record is canonicalisable by the store codec.
    for r in &p.records {
        let bytes = crate::store::canonical_json(&r.fields_value());
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r.fields_value());
    }
}

#[test]
fn listing_page_two_is_the_last() {
    let src = source();
    let url = u("http://registre.example/app/list.jsp?sector=all&page=2");
    let p = extract_page(&url, &page("list_p2.html"), &src).unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(
        p.records[0].fields["name"],
        json!("Boulangerie Müller & Fils")
    );
    assert_eq!(p.records[0].fields["capital"], json!(2000.5));
    assert!(
        p.next_links.is_empty(),
        "rel=prev is not next: {:?}",
        p.next_links
    );
}

#[test]
fn detail_page_joins_the_record() {
    let src = source();
    let list = extract_page(
        &u("http://registre.example/app/list.jsp?sector=all"),
        &page("list_p1.html"),
        &src,
    )
    .unwrap();
    let link = &list.detail_links[0];
    let detail = extract_detail(
        &link.url,
        &page("detail_100234.html"),
        src.extract.detail.as_ref().unwrap(),
    )
    .unwrap();
    assert!(detail.warnings.is_empty(), "{:?}", detail.warnings);
    let mut rec = list
        .records
        .into_iter()
        .find(|r| r.key == link.key)
        .unwrap();
    rec.join_detail(detail.fields);
    assert_eq!(
        rec.fields["address"],
        json!("12, rue de l’Église 75004 Paris")
    );
    assert_eq!(
        rec.fields["activity"],
        json!("Conseil en ingénierie – études techniques")
    );
    assert_eq!(
        rec.fields["directors"],
        json!(["Mme Hélène Dupré", "M. François Lefèvre"])
    );
    assert_eq!(rec.fields["reg_no"], json!("100234"));

    let e = extract_detail(
        &link.url,
        "<p>gone</p>",
        src.extract.detail.as_ref().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("div#fiche"), "{e}");
}

#[test]
fn base_href_rel_next_keys_by_url_and_duplicates() {
    let text = r#"
id = "t"
kind = "html"
start_urls = ["https://a.example/list"]
next = { rel_next = true }
[extract]
record = "li"
key = "url"
fields.title = { selector = "a" }
fields.when = { selector = "time", attr = "datetime", type = "datetime" }
detail = { link = "a", fields = { body = { selector = "article", html = true } } }
"#;
    let SourceSpec::Html(src) = SourceDef::parse_toml(text).unwrap().spec else {
        unreachable!()
    };
    let html = r#"<html><head><base href="https://a.example/items/"><link rel="Next" href="?p=2"></head>
        <ul><li><a href="one#x">One</a><time datetime="2024-03-01T10:00:00+01:00"></time></li>
            <li><a href="one">One again</a></li>
            <li><a href="/two">Two</a><time datetime="yesterday"></time></li>
            <li>no link</li></ul>"#;
    let p = extract_page(&u("https://a.example/list"), html, &src).unwrap();
    assert_eq!(p.next_links, vec![u("https://a.example/items/?p=2")]);
    let keys: Vec<_> = p.records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "https://a.example/items/one",
            "https://a.example/two",
            "https://a.example/list"
        ]
    );
    assert_eq!(p.records[0].fields["when"], json!("2024-03-01T09:00:00Z"));
    assert_eq!(p.records[1].fields["when"], json!(null));
    let msgs: Vec<_> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("appears more than once")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("\"yesterday\"")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("no detail link")),
        "{msgs:?}"
    );
    assert_eq!(p.detail_links.len(), 2);
}

#[test]
fn oversized_pages_are_refused() {
    let big = "a".repeat(MAX_HTML_BYTES + 1);
    let e = extract_page(&u("https://a.example/"), &big, &source()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert!(e.to_string().starts_with("https://a.example/: page is"));
}

#[test]
fn pathologically_deep_pages_are_refused_before_parsing() {
    // html5ever's tree builder is quadratic in nesting depth; 50k nested elements would
    // hold a CPU pool thread for seconds.
    let html = "<div>".repeat(50_000) + "x" + &"</div>".repeat(50_000);
    let t = std::time::Instant::now();
    let e = extract_page(&u("https://a.example/"), &html, &source()).unwrap_err();
    assert!(matches!(e, HtmlError::TooDeep { .. }), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // Deep but legitimate nesting is fine.
    let html = "<div>".repeat(500) + "x" + &"</div>".repeat(500);
    assert!(extract_page(&u("https://a.example/"), &html, &source()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_input_never_panics(s in "\\PC{0,2000}") {
        let _ = extract_page(&u("http://registre.example/app/list.jsp"), &s, &source());
    }

    #[test]
    fn mutated_fixture_never_panics(cuts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..20)) {
        let mut bytes = std::fs::read(format!("{DIR}/registry/list_p1.html")).unwrap();
        for (at, b) in cuts {
            let i = at % bytes.len();
            if b % 3 == 0 { bytes.truncate(i.max(1)); } else { bytes[i] = b; }
        }
        let text = decode_html(&bytes, None).text.into_owned();
        let src = source();
        let p = extract_page(&u("http://registre.example/app/list.jsp"), &text, &src).unwrap();
        for r in &p.records {
            prop_assert!(!r.key.is_empty());
        }
        let _ = extract_detail(&u("http://registre.example/app/f.jsp"), &text, src.extract.detail.as_ref().unwrap());
    }
}

#[test]
fn a_detail_page_without_a_required_field_is_an_error() {
    let mut spec = source().extract.detail.unwrap();
    spec.root = None;
    let url = u("http://registre.example/app/fiche.jsp?id=100234");
    // The page a lost session shows instead of the detail page.
    let hub = "<html><body><h1>Welcome</h1><table id=results></table></body></html>";
    let ok = extract_detail(&url, hub, &spec).unwrap();
    assert!(ok.fields.values().all(Value::is_null), "{ok:?}");
    spec.fields.get_mut("address").unwrap().required = true;
    let e = extract_detail(&url, hub, &spec).unwrap_err();
    assert_eq!(e.label(), "required_missing");
    assert!(
        e.to_string()
            .contains("required field \"address\" is missing"),
        "{e}"
    );
    let page = "<html><body><dl><dd class=address>1 rue X</dd></dl></body></html>";
    let got = extract_detail(&url, page, &spec).unwrap();
    assert_eq!(got.fields["address"], json!("1 rue X"));
}

#[test]
fn page_matches_finds_a_session_marker() {
    let sel = crate::harvest::source::CssSelector::parse("form#login").unwrap();
    assert!(page_matches("<html><form id=login></form></html>", &sel));
    assert!(!page_matches("<html><form id=search></form></html>", &sel));
}
