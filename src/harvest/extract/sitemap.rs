//! Sitemaps (sitemaps.org protocol 0.9): a `<urlset>` of page URLs or a `<sitemapindex>`
//! of further sitemaps, plain or gzipped, each entry with its `lastmod`.
//!
//! Namespaces and prefixes are ignored (matching on local names): many real sitemaps get
//! the namespace wrong, and the protocol's structure is unambiguous without it. Entries
//! whose `loc` is not an absolute http(s) URL are skipped with a warning; a sitemap broken
//! part-way keeps the entries before the break, with a warning.

use quick_xml::events::Event;
use quick_xml::Reader;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use url::Url;

use super::xml::{entity, gunzip_capped, xml_text, Unpack};
use crate::error::ErrorKind;
use crate::harvest::limits::MAX_SITEMAP_ENTRIES;
use crate::harvest::record::{Warning, Warnings};
use crate::harvest::urls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SitemapKind {
    /// `<sitemapindex>`: entries are sitemaps to fetch next.
    Index,
    /// `<urlset>`: entries are pages to extract.
    UrlSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitemapEntry {
    pub loc: Url,
    /// `lastmod` (W3C datetime; a date alone is midnight UTC), when present and valid.
    pub lastmod: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sitemap {
    pub kind: SitemapKind,
    pub entries: Vec<SitemapEntry>,
    pub warnings: Vec<Warning>,
    /// Why entries may be missing (the XML broke off, or past the entry cap): the sitemap
    /// is then an error for the run, so the pages it did not list are not taken for removed.
    pub incomplete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SitemapError {
    #[error("{url}: sitemap is larger than {limit} bytes once decompressed")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: gzip data is corrupt: {reason}")]
    Gzip { url: String, reason: String },
    #[error("{url}: not valid XML: {reason}")]
    Xml { url: String, reason: String },
    #[error("{url}: not a sitemap (root element <{root}>, expected <urlset> or <sitemapindex>)")]
    NotASitemap { url: String, root: String },
}

impl SitemapError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SitemapError::TooLarge { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::InvalidInput,
        }
    }
}

/// Parses one sitemap body. `cap` bounds the decompressed size (at most
/// [`crate::harvest::limits::MAX_SITEMAP_BYTES`] is sensible).
pub fn parse_sitemap(
    url: &Url,
    body: &[u8],
    content_type: Option<&str>,
    cap: usize,
) -> Result<Sitemap, SitemapError> {
    let cap = cap.min(crate::harvest::limits::MAX_SITEMAP_BYTES);
    if body.len() > cap {
        return Err(SitemapError::TooLarge {
            url: url.to_string(),
            limit: cap,
        });
    }
    let raw = gunzip_capped(body, cap).map_err(|e| match e {
        Unpack::TooLarge => SitemapError::TooLarge {
            url: url.to_string(),
            limit: cap,
        },
        Unpack::Corrupt(reason) => SitemapError::Gzip {
            url: url.to_string(),
            reason,
        },
    })?;
    // A gzipped body's Content-Type describes the gzip, not the XML inside.
    let ct = if super::xml::is_gzip(body) {
        None
    } else {
        content_type
    };
    let text = xml_text(&raw, ct);
    parse_text(url, &text)
}

fn parse_text(url: &Url, text: &str) -> Result<Sitemap, SitemapError> {
    let xml_err = |e: quick_xml::Error, pos: u64| SitemapError::Xml {
        url: url.to_string(),
        reason: format!("{e} (at byte {pos})"),
    };
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut kind = None;
    let mut entries = Vec::new();
    let mut warnings = Warnings::default();
    // Inside <url>/<sitemap>: the field being read and the entry's loc and lastmod.
    let mut in_entry = false;
    let mut field: Option<&'static str> = None;
    let mut loc = String::new();
    let mut lastmod = String::new();
    let mut truncated = false;
    let mut incomplete = None;
    let mut depth = 0usize;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            // A sitemap cut short (a truncated download, a broken generator) still lists
            // the entries before the break; keep them and say where it broke.
            Err(e) if kind.is_some() => {
                let why = format!(
                    "XML error at byte {}: {e}; entries after it were not read",
                    reader.buffer_position()
                );
                warnings.push(None, why.clone());
                incomplete = Some(why);
                break;
            }
            Err(e) => return Err(xml_err(e, reader.buffer_position())),
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                let name = e.local_name();
                let name = name.as_ref();
                field = None;
                match (depth, kind, name) {
                    (1, _, "urlset") => kind = Some(SitemapKind::UrlSet),
                    (1, _, "sitemapindex") => kind = Some(SitemapKind::Index),
                    (1, _, other) => {
                        return Err(SitemapError::NotASitemap {
                            url: url.to_string(),
                            root: other.chars().take(64).collect(),
                        })
                    }
                    (2, Some(SitemapKind::UrlSet), "url")
                    | (2, Some(SitemapKind::Index), "sitemap") => {
                        in_entry = true;
                        loc.clear();
                        lastmod.clear();
                    }
                    // Only the entry's own children: <image:loc> inside <url> is not the page.
                    (3, _, "loc") if in_entry => field = Some("loc"),
                    (3, _, "lastmod") if in_entry => field = Some("lastmod"),
                    _ => {}
                }
            }
            Event::Empty(e) if kind.is_none() => {
                let name = e.local_name();
                return match name.as_ref() {
                    "urlset" => Ok(Sitemap {
                        kind: SitemapKind::UrlSet,
                        entries,
                        warnings: warnings.finish(),
                        incomplete: None,
                    }),
                    "sitemapindex" => Ok(Sitemap {
                        kind: SitemapKind::Index,
                        entries,
                        warnings: warnings.finish(),
                        incomplete: None,
                    }),
                    other => Err(SitemapError::NotASitemap {
                        url: url.to_string(),
                        root: other.chars().take(64).collect(),
                    }),
                };
            }
            Event::Text(t) => push_text(field, &t.xml10_content(), &mut loc, &mut lastmod),
            Event::CData(t) => push_text(field, &t, &mut loc, &mut lastmod),
            Event::GeneralRef(r) => {
                if let Some(c) = entity(&r) {
                    push_text(field, c.encode_utf8(&mut [0; 4]), &mut loc, &mut lastmod);
                }
            }
            Event::End(_) => {
                field = None;
                if depth == 2 && in_entry {
                    in_entry = false;
                    if entries.len() >= MAX_SITEMAP_ENTRIES {
                        truncated = true;
                    } else {
                        match entry(url, &loc, &lastmod) {
                            Ok(e) => entries.push(e),
                            Err(why) => warnings.push(Some(entries.len()), why),
                        }
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                if depth > 0 && kind.is_some() {
                    let why = "the sitemap ends before its elements close (truncated?); the last entry may be missing";
                    warnings.push(None, why);
                    incomplete = Some(why.to_owned());
                }
                break;
            }
            _ => {}
        }
    }
    let Some(kind) = kind else {
        return Err(SitemapError::NotASitemap {
            url: url.to_string(),
            root: "(none)".into(),
        });
    };
    if truncated {
        let why = format!("more than {MAX_SITEMAP_ENTRIES} entries; the rest were skipped");
        warnings.push(None, why.clone());
        incomplete.get_or_insert(why);
    }
    Ok(Sitemap {
        kind,
        entries,
        warnings: warnings.finish(),
        incomplete,
    })
}

fn push_text(field: Option<&str>, s: &str, loc: &mut String, lastmod: &mut String) {
    let target = match field {
        Some("loc") => loc,
        Some("lastmod") => lastmod,
        _ => return,
    };
    if target.len() + s.len() <= crate::harvest::limits::MAX_URL_BYTES {
        target.push_str(s);
    }
}

fn entry(sitemap: &Url, loc: &str, lastmod: &str) -> Result<SitemapEntry, String> {
    let loc = loc.trim();
    // The protocol requires absolute URLs; resolving keeps the check in one place while
    // refusing relative ones explicitly.
    let u = match Url::parse(loc) {
        Ok(_) => urls::resolve(sitemap, loc),
        Err(_) => None,
    }
    .ok_or_else(|| {
        format!(
            "loc {:?} is not an absolute http(s) URL; entry skipped",
            loc.chars().take(100).collect::<String>()
        )
    })?;
    Ok(SitemapEntry {
        loc: u,
        lastmod: parse_lastmod(lastmod.trim()),
    })
}

/// W3C datetime: `YYYY-MM-DD`, or RFC 3339 (also without seconds, which sitemaps use).
fn parse_lastmod(s: &str) -> Option<OffsetDateTime> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(s, &date_fmt) {
        return Some(d.midnight().assume_utc());
    }
    // `2024-03-01T10:00+01:00`: add the missing seconds.
    if s.len() > 16
        && s.as_bytes()
            .get(16)
            .is_some_and(|b| matches!(b, b'+' | b'-' | b'Z'))
    {
        let with_secs = format!("{}:00{}", &s[..16], &s[16..]);
        return OffsetDateTime::parse(&with_secs, &Rfc3339).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/harvest/sitemap"
    );

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn index_then_gzipped_urlset() {
        let index = std::fs::read(format!("{DIR}/sitemap_index.xml")).unwrap();
        let s = parse_sitemap(
            &u("https://shop.example/sitemap_index.xml"),
            &index,
            Some("application/xml"),
            1 << 20,
        )
        .unwrap();
        assert_eq!(s.kind, SitemapKind::Index);
        assert_eq!(s.entries.len(), 2);
        assert_eq!(
            s.entries[0].loc.as_str(),
            "https://shop.example/sitemaps/products-1.xml.gz"
        );
        assert_eq!(
            s.entries[0].lastmod,
            Some(datetime!(2024-03-01 08:00:00 UTC))
        );

        let gz = std::fs::read(format!("{DIR}/products-1.xml.gz")).unwrap();
        assert!(super::super::xml::is_gzip(&gz));
        let s = parse_sitemap(
            &s.entries[0].loc,
            &gz,
            Some("application/octet-stream"),
            1 << 20,
        )
        .unwrap();
        assert_eq!(s.kind, SitemapKind::UrlSet);
        let locs: Vec<_> = s.entries.iter().map(|e| e.loc.as_str()).collect();
        assert_eq!(
            locs,
            [
                "https://shop.example/product/widget?colour=blue&size=s",
                "https://shop.example/product/caf%C3%A9-cr%C3%A8me",
                "https://shop.example/product/gadget",
                "https://shop.example/about",
            ]
        );
        assert_eq!(
            s.entries[0].lastmod,
            Some(datetime!(2024-02-28 00:00:00 UTC))
        );
        assert_eq!(
            s.entries[1].lastmod,
            Some(datetime!(2024-02-29 09:30:00 +01:00))
        );
        assert_eq!(s.entries[2].lastmod, None);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].message.contains("\"/relative/page\""));

        // The decompressed-size cap holds.
        let e = parse_sitemap(&u("https://shop.example/s.xml.gz"), &gz, None, 200).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn not_sitemaps() {
        let url = u("https://x.example/s.xml");
        let e = parse_sitemap(&url, b"<html><body>404</body></html>", None, 1000).unwrap_err();
        assert!(
            matches!(e, SitemapError::NotASitemap { ref root, .. } if root == "html"),
            "{e}"
        );
        let cut = parse_sitemap(
            &url,
            b"<urlset><url><loc>https://x.example/a</loc></url><url><loc>https://x.exa",
            None,
            1000,
        )
        .unwrap();
        assert_eq!(cut.entries.len(), 1, "entries before a break are kept");
        assert!(cut.incomplete.as_deref().unwrap().contains("truncated"));
        assert!(
            cut.warnings[0].message.contains("truncated"),
            "{:?}",
            cut.warnings
        );
        let broken = parse_sitemap(
            &url,
            b"<urlset><url><loc>https://x.example/a</loc></url></wrong>",
            None,
            1000,
        )
        .unwrap();
        assert_eq!(broken.entries.len(), 1);
        assert!(
            broken.warnings[0].message.starts_with("XML error at byte"),
            "{:?}",
            broken.warnings
        );
        assert!(matches!(
            parse_sitemap(&url, b"<?xml version='1.0'?><<<", None, 1000),
            Err(SitemapError::Xml { .. })
        ));
        assert!(matches!(
            parse_sitemap(&url, b"", None, 1000),
            Err(SitemapError::NotASitemap { .. })
        ));
        assert_eq!(
            parse_sitemap(&url, b"<urlset/>", None, 1000)
                .unwrap()
                .entries
                .len(),
            0
        );
        assert!(matches!(
            parse_sitemap(&url, &[0x1f, 0x8b, 8, 0, 0], None, 1000),
            Err(SitemapError::Gzip { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_sitemap(&u("https://x.example/s.xml"), &body, None, 1 << 16);
        }

        #[test]
        fn mutated_sitemaps_never_panic(at in any::<usize>(), b in any::<u8>()) {
            let mut body = std::fs::read(format!("{DIR}/sitemap_index.xml")).unwrap();
            let i = at % body.len();
            body[i] = b;
            let _ = parse_sitemap(&u("https://x.example/s.xml"), &body, None, 1 << 16);
        }
    }
}
