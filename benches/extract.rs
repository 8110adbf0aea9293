//! Extraction throughput: HTML listing pages per second and JSON API records per second,
//! through the full pure path (decode, parse, select, convert, key, links).
//!
//! `cargo bench --bench extract -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gleaner::harvest::charset::decode_html;
use gleaner::harvest::extract::{html, json};
use gleaner::harvest::source::{SourceDef, SourceSpec};
use url::Url;

const HTML_DEF: &str = r#"
id = "registry"
kind = "html"
start_urls = ["http://registre.example/app/list.jsp"]
next = { selector = "a.next", rel_next = true }
scope = { prefix = "http://registre.example/app/", exclude = ["print=1"] }
[extract]
record = "table#results tr.company"
key = { field = "reg_no" }
fields.reg_no = { selector = "td.reg", regex = "(\\d{6})", required = true }
fields.name = { selector = "td.name a" }
fields.capital = { selector = "td.capital", type = "number", decimal = "," }
fields.registered = { selector = "td.date", type = "date", format = "[day]/[month]/[year]" }
fields.active = { selector = "td.status", attr = "data-active", type = "bool" }
fields.city = { selector = "td.city" }
detail = { link = "td.name a", fields = { address = { selector = "dd.address" } } }
"#;

/// A ~30 KB listing page with 50 companies, windows-1252 encoded, in the style of an old
/// JSP registry (upper-case tags, unclosed cells, navigation and footer around the table).
fn listing_page() -> Vec<u8> {
    let mut s = String::from(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<HTML><HEAD>\
         <META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=windows-1252\">\
         <TITLE>Registre des sociétés – Résultats</TITLE>\
         <LINK REL=\"stylesheet\" HREF=\"/app/css/main.css\"></HEAD><BODY>\n\
         <TABLE WIDTH=\"100%\"><TR><TD><A HREF=\"/app/\">Accueil</A> | <A HREF=\"/app/search.jsp\">Recherche</A> | \
         <A HREF=\"http://www.ministere.example/\">Ministère</A></TD></TR></TABLE>\n\
         <TABLE ID=\"results\" BORDER=\"1\">\n<TR><TH>N°<TH>Dénomination<TH>Capital<TH>Date<TH>Statut<TH>Ville</TR>\n",
    );
    let cities = [
        "Paris",
        "Lyon",
        "Orléans",
        "Besançon",
        "Nîmes",
        "Saint-Étienne",
    ];
    for i in 0..50 {
        let reg = 100_000 + i * 7;
        s.push_str(&format!(
            "<TR CLASS=\"company\">\n  <TD CLASS=\"reg\">RCS {reg}\n  <TD CLASS=\"name\"><A HREF=\"fiche.jsp;jsessionid=A1B2C3?id={reg}&amp;from=list\">Société d’Études n°{i} &amp; Associés</A>\n  \
             <TD CLASS=\"capital\">{}.{:03},{:02} €\n  <TD CLASS=\"date\">{:02}/{:02}/{}\n  <TD CLASS=\"status\" DATA-ACTIVE=\"{}\">{}\n  <TD CLASS=\"city\">{}\n</TR>\n",
            1 + i % 90,
            (i * 37) % 1000,
            i % 100,
            1 + i % 28,
            1 + i % 12,
            1950 + i,
            i % 2,
            if i % 2 == 1 { "Active" } else { "Radiée" },
            cities[i % cities.len()],
        ));
    }
    s.push_str("</TABLE>\n<P CLASS=\"pager\">");
    for p in 1..=20 {
        s.push_str(&format!(
            "<A HREF=\"list.jsp?sector=all&amp;page={p}\">{p}</A> "
        ));
    }
    s.push_str(
        "<A CLASS=\"next\" HREF=\"list.jsp?sector=all&amp;page=2\">Suivant &raquo;</A></P>\n",
    );
    s.push_str("<P>© 2003 Registre – tous droits réservés. Mentions légales, conditions d’utilisation, accessibilité.</P>\n");
    // Old pages carry a lot of inline script and markup around the data.
    s.push_str("<SCRIPT LANGUAGE=\"JavaScript\">\nfunction popup(u){window.open(u,'fiche','width=600,height=400');}\n");
    while s.len() < 29_000 {
        s.push_str("// menu navigation legacy code, kept for compatibility with Netscape 4\n");
    }
    s.push_str("</SCRIPT></BODY></HTML>\n");
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&s);
    bytes.into_owned()
}

/// A realistic API page: 100 permit records with nested objects and a cursor.
fn api_page() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let kind = ["building", "demolition", "signage"][i % 3];
            let status = ["granted", "pending", "refused"][i % 3];
            serde_json::json!({
                "id": format!("P-2024-{i:05}"),
                "type": kind,
                "status": status,
                "applicant": {"name": format!("Applicant {i} – Hélène"), "kind": "person"},
                "address": {"street": format!("{i} rue de l'Église"), "city": "Paris", "postcode": "75004"},
                "fee": {"amount": 100.5 + i as f64, "currency": "EUR"},
                "tags": ["urban", "heritage"],
                "updated_at": "2024-03-01T09:12:44Z",
            })
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"items": items, "count": 100, "next_token": "eyJvZmZzZXQiOjEwMH0"}),
    )
    .unwrap()
}

fn bench_html(c: &mut Criterion) {
    let SourceSpec::Html(src) = SourceDef::parse_toml(HTML_DEF).unwrap().spec else {
        unreachable!()
    };
    let page = listing_page();
    let url = Url::parse("http://registre.example/app/list.jsp?sector=all").unwrap();
    // Sanity: the benchmark measures real work.
    let text = decode_html(&page, Some("text/html")).text.into_owned();
    let out = html::extract_page(&url, &text, &src).unwrap();
    assert_eq!(out.records.len(), 50);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    eprintln!(
        "listing page: {} bytes, {} records, {} discovered links",
        page.len(),
        out.records.len(),
        out.discovered_links.len()
    );

    let mut g = c.benchmark_group("html");
    g.throughput(Throughput::Elements(1));
    g.bench_function("listing_page_50_records", |b| {
        b.iter(|| {
            let text = decode_html(black_box(&page), Some("text/html")).text;
            html::extract_page(&url, &text, &src).unwrap()
        })
    });
    g.finish();
}

fn bench_json(c: &mut Criterion) {
    let def = serde_json::json!({
        "id": "permits", "kind": "json", "url": "https://api.example/v2/permits",
        "records": "$.items[*]", "key": {"field": "id"},
        "pagination": {"type": "cursor", "path": "$.next_token", "param": "next_token"}
    });
    let SourceSpec::Json(src) = SourceDef::parse_json(&serde_json::to_vec(&def).unwrap())
        .unwrap()
        .spec
    else {
        unreachable!()
    };
    let body = api_page();
    let state = json::first_request(&src, None).unwrap().state;
    let headers = [("content-type", "application/json")];
    let out = json::extract_json_page(&body, &headers, &src, &state).unwrap();
    assert_eq!(out.records.len(), 100);
    assert!(out.next.is_some());
    eprintln!(
        "api page: {} bytes, {} records",
        body.len(),
        out.records.len()
    );

    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(100));
    g.bench_function("api_page_100_records", |b| {
        b.iter(|| json::extract_json_page(black_box(&body), &headers, &src, &state).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_html, bench_json);
criterion_main!(benches);
