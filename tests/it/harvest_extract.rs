//! The harvest extractors used the way the fetch stage will use them: a crawl of an old
//! JSP registry from its start URL, following next links and detail pages, obeying
//! robots.txt, with bodies served from fixtures instead of the network.

use std::collections::{BTreeMap, HashMap, VecDeque};

use gleaner::harvest::charset::decode_html;
use gleaner::harvest::extract::html::{extract_detail, extract_page};
use gleaner::harvest::robots::RobotsTxt;
use gleaner::harvest::source::{SourceDef, SourceSpec};
use gleaner::harvest::ExtractedRecord;
use url::Url;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{path}")).unwrap()
}

#[test]
fn crawl_registry_listing_with_detail_pages() {
    let def = SourceDef::parse_toml(&String::from_utf8(fixture("sources/registry.toml")).unwrap())
        .unwrap();
    def.validate_untrusted().unwrap();
    let SourceSpec::Html(src) = &def.spec else {
        panic!("not html")
    };
    let detail_spec = src.extract.detail.as_ref().unwrap();

    // The "web": listing pages, one detail page, and a robots.txt that forbids the
    // detail page of one company.
    let mut web: HashMap<String, Vec<u8>> = HashMap::new();
    web.insert(
        "http://registre.example/app/list.jsp?sector=all".into(),
        fixture("registry/list_p1.html"),
    );
    web.insert(
        "http://registre.example/app/list.jsp?sector=all&page=2".into(),
        fixture("registry/list_p2.html"),
    );
    web.insert(
        "http://registre.example/app/fiche.jsp;jsessionid=A1B2C3?id=100234&from=list".into(),
        fixture("registry/detail_100234.html"),
    );
    let robots =
        RobotsTxt::parse(b"User-agent: *\nDisallow: /app/fiche.jsp;jsessionid=A1B2C3?id=100236\n")
            .for_agent("GleanerBot");

    let mut queue: VecDeque<Url> = src.start_urls.iter().map(|u| u.url().clone()).collect();
    let mut records: BTreeMap<String, ExtractedRecord> = BTreeMap::new();
    let mut pending_details = Vec::new();
    let mut fetched = 0;
    while let Some(url) = queue.pop_front() {
        assert!(robots.allowed(&url));
        let body = web
            .get(url.as_str())
            .unwrap_or_else(|| panic!("no page {url}"));
        fetched += 1;
        let text = decode_html(body, Some("text/html")).text;
        let page = extract_page(&url, &text, src).unwrap();
        for r in page.records {
            records.insert(r.key.clone(), r);
        }
        pending_details.extend(page.detail_links);
        queue.extend(page.next_links);
    }
    assert_eq!(fetched, 2, "page 1, then page 2 through the next link");
    assert_eq!(
        records.keys().collect::<Vec<_>>(),
        ["100234", "100235", "100236", "100237"]
    );

    let mut joined = 0;
    let mut blocked = 0;
    for link in pending_details {
        if !robots.allowed(&link.url) {
            blocked += 1;
            continue;
        }
        let Some(body) = web.get(link.url.as_str()) else {
            continue;
        };
        let text = decode_html(body, None).text;
        let detail = extract_detail(&link.url, &text, detail_spec).unwrap();
        records
            .get_mut(&link.key)
            .unwrap()
            .join_detail(detail.fields);
        joined += 1;
    }
    assert_eq!((joined, blocked), (1, 1));
    let r = &records["100234"];
    assert_eq!(r.fields["name"], "Société Générale d’Études");
    assert_eq!(r.fields["address"], "12, rue de l’Église 75004 Paris");
    assert_eq!(r.fields["capital"], 1234567.89);

    // Every record goes through the store's canonical JSON unchanged.
    for r in records.values() {
        let v = r.fields_value();
        let back: serde_json::Value =
            serde_json::from_slice(&gleaner::store::canonical_json(&v)).unwrap();
        assert_eq!(back, v);
    }
}
