//! RSS 2.0, RSS 1.0, Atom 1.0 (and JSON Feed) into records, one per entry.
//!
//! Parsing is feed-rs's, which copes with the date formats and namespace habits found in
//! real feeds. The key is the entry's guid/id, else its link (or the other way round, per
//! [`FeedKey`]); feed-rs would invent an id from a hash when there is none, which would
//! change when the title is edited, so that is turned off.

use serde_json::{Map, Value};
use url::Url;

use super::xml::{restore_declarations, without_declarations, xml_text};
use crate::error::ErrorKind;
use crate::harvest::convert::rfc3339_utc;
use crate::harvest::limits::{MAX_FEED_BYTES, MAX_RECORDS_PER_PAGE};
use crate::harvest::record::{clean_key, ExtractedRecord, Warning, Warnings};
use crate::harvest::source::{FeedKey, FeedSource};
use crate::harvest::urls;

#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    /// The feed's own title, for display.
    pub title: Option<String>,
    pub records: Vec<ExtractedRecord>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("{url}: feed is {size} bytes; the limit is {limit}")]
    TooLarge {
        url: String,
        size: usize,
        limit: usize,
    },
    #[error("{url}: not a readable RSS, Atom or JSON feed: {reason}")]
    Parse { url: String, reason: String },
}

impl FeedError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FeedError::TooLarge { .. } => ErrorKind::TooLarge,
            FeedError::Parse { .. } => ErrorKind::InvalidInput,
        }
    }
}

pub fn extract_feed(
    url: &Url,
    body: &[u8],
    content_type: Option<&str>,
    src: &FeedSource,
) -> Result<FeedPage, FeedError> {
    if body.len() > MAX_FEED_BYTES {
        return Err(FeedError::TooLarge {
            url: url.to_string(),
            size: body.len(),
            limit: MAX_FEED_BYTES,
        });
    }
    let mut text = xml_text(body, content_type);
    let mut marked = false;
    // feed-rs reads XML when a '<' comes before any '{' (else JSON, left as it is).
    if text.bytes().find(|b| matches!(b, b'<' | b'{')) == Some(b'<') {
        (text, marked) = without_declarations(text);
    }
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(url.as_str()))
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(text.as_bytes())
        .map_err(|e| FeedError::Parse {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let mut warnings = Warnings::default();
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in feed.entries.into_iter().enumerate() {
        if i >= MAX_RECORDS_PER_PAGE {
            warnings.push(
                None,
                format!("more than {MAX_RECORDS_PER_PAGE} entries; the rest were skipped"),
            );
            break;
        }
        let link = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
            .and_then(|l| urls::resolve(url, &l.href));
        let id = entry.id.trim().to_owned();
        let candidates = match src.key {
            FeedKey::Id => [Some(id.clone()), link.as_ref().map(|l| l.to_string())],
            FeedKey::Link => [link.as_ref().map(|l| l.to_string()), Some(id.clone())],
        };
        let Some(key) = candidates
            .into_iter()
            .flatten()
            .find_map(|k| clean_key(&k).ok())
        else {
            warnings.push(Some(i), "entry has neither an id/guid nor a link; skipped");
            continue;
        };
        if !seen.insert(key.clone()) {
            warnings.push(
                Some(i),
                format!("entry {key:?} appears more than once; later ones skipped"),
            );
            continue;
        }
        let mut f = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                f.insert(k.to_owned(), v);
            }
        };
        put("id", (!id.is_empty()).then_some(Value::String(id)));
        put("title", entry.title.map(|t| Value::String(t.content)));
        put("link", link.map(|l| Value::String(l.into())));
        put(
            "published",
            entry.published.map(|d| Value::String(chrono_rfc3339(d))),
        );
        put(
            "updated",
            entry.updated.map(|d| Value::String(chrono_rfc3339(d))),
        );
        put("summary", entry.summary.map(|t| Value::String(t.content)));
        if src.include_content {
            put(
                "content",
                entry.content.and_then(|c| c.body).map(Value::String),
            );
        }
        let authors: Vec<Value> = entry
            .authors
            .into_iter()
            .filter_map(|p| p.name)
            .filter(|n| !n.trim().is_empty())
            .map(Value::String)
            .collect();
        put(
            "authors",
            (!authors.is_empty()).then_some(Value::Array(authors)),
        );
        let cats: Vec<Value> = entry
            .categories
            .into_iter()
            .map(|c| Value::String(c.term))
            .collect();
        put(
            "categories",
            (!cats.is_empty()).then_some(Value::Array(cats)),
        );
        if marked {
            for v in f.values_mut() {
                restore_in(v);
            }
        }
        let key = if marked {
            restore_declarations(key)
        } else {
            key
        };
        records.push(ExtractedRecord { key, fields: f });
    }
    Ok(FeedPage {
        title: feed.title.map(|t| {
            if marked {
                restore_declarations(t.content)
            } else {
                t.content
            }
        }),
        records,
        warnings: warnings.finish(),
    })
}

/// feed-rs dates are chrono UTC; records use one RFC 3339 form everywhere.
fn chrono_rfc3339(d: chrono::DateTime<chrono::Utc>) -> String {
    time::OffsetDateTime::from_unix_timestamp(d.timestamp())
        .map(rfc3339_utc)
        .unwrap_or_else(|_| d.to_rfc3339())
}

/// Puts back the `<?xml` that [`without_declarations`] marked, in every string of `v`.
fn restore_in(v: &mut Value) {
    match v {
        Value::String(s) => *s = restore_declarations(std::mem::take(s)),
        Value::Array(a) => a.iter_mut().for_each(restore_in),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::{SourceDef, SourceSpec};
    use proptest::prelude::*;
    use serde_json::json;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

    fn src(key: &str) -> FeedSource {
        let t = format!("id = \"f\"\nkind = \"feed\"\nfeeds = [\"https://city.example/news.rss\"]\nkey = \"{key}\"\n");
        match SourceDef::parse_toml(&t).unwrap().spec {
            SourceSpec::Feed(f) => f,
            _ => unreachable!(),
        }
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/feed/{name}")).unwrap()
    }

    #[test]
    fn rss_in_windows_1252() {
        let url = Url::parse("https://city.example/news.rss").unwrap();
        let p = extract_feed(
            &url,
            &read("news.rss"),
            Some("application/rss+xml"),
            &src("id"),
        )
        .unwrap();
        assert_eq!(p.title.as_deref(), Some("Ville d’Exemple – Actualités"));
        let keys: Vec<_> = p.records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "news-2024-031",
                "https://city.example/actualites/marche-noel"
            ]
        );
        let r = &p.records[0];
        assert_eq!(r.fields["title"], json!("Fête de l’été : 5 € l’entrée"));
        assert_eq!(
            r.fields["link"],
            json!("https://city.example/actualites/fete-ete")
        );
        assert_eq!(r.fields["published"], json!("2024-03-01T09:00:00Z"));
        assert_eq!(r.fields["categories"], json!(["Culture", "Événements"]));
        assert!(r.fields["summary"].as_str().unwrap().contains("<b>"));
        // The entry with neither guid nor link is skipped and reported.
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].record, Some(2));
    }

    #[test]
    fn atom_with_relative_links_and_link_keys() {
        let url = Url::parse("https://blog.example/feed.atom").unwrap();
        let p = extract_feed(&url, &read("blog.atom"), None, &src("link")).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.records[0].key, "https://blog.example/posts/hello");
        assert_eq!(p.records[0].fields["id"], json!("tag:blog.example,2024:1"));
        assert_eq!(
            p.records[0].fields["updated"],
            json!("2024-02-29T23:00:00Z")
        );
        assert_eq!(p.records[0].fields["authors"], json!(["Zoë Martin"]));
        assert_eq!(
            p.records[0].fields["content"],
            json!("<p>Bonjour à tous</p>")
        );
        let p = extract_feed(&url, &read("blog.atom"), None, &src("id")).unwrap();
        assert_eq!(p.records[1].key, "tag:blog.example,2024:2");
    }

    #[test]
    fn declarations_after_the_start_are_dropped_not_a_panic() {
        // Found by fuzzing (fuzz/corpus/feed/regress-stray-declaration): feed-rs switched
        // its decoder on a second declaration naming another encoding, and quick-xml
        // panicked once past the document's first bytes.
        let url = Url::parse("https://blog.example/atom.xml").unwrap();
        let filler = "<!-- padding past the parser's first buffer -->".repeat(40);
        for enc in ["windows-1252", "utf-16", "utf-8"] {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">\
                 <title>Le blog</title>{filler}<?xml version=\"1.0\" encoding=\"{enc}\"?>\
                 <entry><id>tag:e1</id><title>Café crème</title></entry></feed>"
            );
            let p = extract_feed(&url, body.as_bytes(), None, &src("id")).unwrap();
            assert_eq!(p.records.len(), 1, "{enc}");
            assert_eq!(p.records[0].key, "tag:e1");
            assert_eq!(p.records[0].fields["title"], json!("Café crème"), "{enc}");
        }
        // The inputs the fuzzer found (the second after a broken end tag, past which a
        // parse-based scan stopped): an error or a page, never a panic.
        for found in [
            &include_bytes!("../../../fuzz/corpus/feed/regress-stray-declaration")[..],
            &include_bytes!("../../../fuzz/corpus/feed/regress-stray-declaration-2")[..],
            // An unfinished `<?xml` before a real one: a scan that skipped to the first
            // `?>` and quick-xml disagreed on where it ended.
            &include_bytes!("../../../fuzz/corpus/feed/regress-stray-declaration-3")[..],
        ] {
            let _ = extract_feed(&url, &found[1..], None, &src("id"));
        }
        let broken = format!(
            "x</upd1ated>{filler}<?xml version=\"1.0\" encoding=\"windows-1252\"?>\
             <rss version=\"2.0\"><channel><title>t</title><item><guid>g</guid></item></channel></rss>"
        );
        let _ = extract_feed(&url, broken.as_bytes(), None, &src("id"));
        // Inside CDATA a declaration is text, and JSON feeds are left alone.
        let cdata = "<rss version=\"2.0\"><channel><title>t</title><item><guid>g1</guid>\
                     <description><![CDATA[<?xml version=\"1.0\" encoding=\"latin1\"?>]]></description>\
                     </item></channel></rss>";
        let p = extract_feed(&url, cdata.as_bytes(), None, &src("id")).unwrap();
        assert_eq!(
            p.records[0].fields["summary"],
            json!("<?xml version=\"1.0\" encoding=\"latin1\"?>")
        );
    }

    #[test]
    fn not_feeds() {
        let url = Url::parse("https://x.example/f").unwrap();
        let e = extract_feed(&url, b"<html><p>moved</p></html>", None, &src("id")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .starts_with("https://x.example/f: not a readable"),
            "{e}"
        );
        assert!(extract_feed(&url, b"", None, &src("id")).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn mutated_feeds_never_panic(which in 0..2usize, muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut body = read(["news.rss", "blog.atom"][which]);
            for (at, b) in muts {
                let i = at % body.len();
                body[i] = b;
            }
            let url = Url::parse("https://x.example/f").unwrap();
            let _ = extract_feed(&url, &body, None, &src("id"));
        }

        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let url = Url::parse("https://x.example/f").unwrap();
            let _ = extract_feed(&url, &body, None, &src("id"));
        }
    }
}
