//! HTML pages: records, next links, detail links and in-scope links from one page.
//!
//! Parsing is html5ever's (through scraper), the same algorithm browsers use, so tag soup
//! parses as a browser would show it and nothing malformed is an error. Relative links
//! resolve against `<base href>` when the page has one, else the page URL.

mod depth;
mod fields;

use std::collections::HashSet;
use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};
use serde_json::{Map, Value};
use url::Url;

use self::fields::{field_value, FieldValue};
use crate::error::ErrorKind;
use crate::harvest::limits::{MAX_HTML_BYTES, MAX_RECORDS_PER_PAGE};
use crate::harvest::record::{clean_key, key_from_fields, ExtractedRecord, Warning, Warnings};
use crate::harvest::source::{CssSelector, DetailSpec, FieldSpec, HtmlSource, KeySpec, RecordSpec};
use crate::harvest::urls::{self, UrlSet};

/// What one listing page yields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageExtract {
    pub records: Vec<ExtractedRecord>,
    /// Next listing pages (normalised, deduplicated, never the page itself).
    pub next_links: Vec<Url>,
    /// Detail pages to fetch and join into the record with the same key.
    pub detail_links: Vec<DetailLink>,
    /// Every `a[href]` / `area[href]` in the crawl scope, normalised and deduplicated.
    pub discovered_links: Vec<Url>,
    pub warnings: Vec<Warning>,
    /// Records that could not be read whole (a required field missing or bad, or past the
    /// per-page cap): an error for the page, never stored.
    pub rejected: Vec<Rejected>,
}

/// A record on a page that is not stored because it is incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the record on the page; `None` for the records past the per-page cap.
    pub record: Option<usize>,
    /// Its key, when the fields it is built from were there.
    pub key: Option<String>,
    pub reason: String,
}

/// A record's detail page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailLink {
    pub key: String,
    pub url: Url,
}

/// The fields of one detail page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetailExtract {
    pub fields: Map<String, Value>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    #[error("{url}: page is {size} bytes; the limit is {limit}")]
    TooLarge {
        url: String,
        size: usize,
        limit: usize,
    },
    #[error("{url}: page nests elements more than {limit} deep; it is not a page to extract from")]
    TooDeep { url: String, limit: usize },
    #[error("{url}: detail page has no element matching {selector:?}")]
    DetailRootMissing { url: String, selector: String },
    #[error("{url}: {reason}; the record is not stored")]
    RequiredMissing { url: String, reason: String },
}

impl HtmlError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            HtmlError::TooLarge { .. } | HtmlError::TooDeep { .. } => ErrorKind::TooLarge,
            // The page is not what the definition expects: fixing means changing one or the
            // other, and retrying the same page fails the same way.
            HtmlError::DetailRootMissing { .. } | HtmlError::RequiredMissing { .. } => {
                ErrorKind::InvalidInput
            }
        }
    }

    /// The short class a run's error list shows.
    pub fn label(&self) -> &'static str {
        match self {
            HtmlError::RequiredMissing { .. } => "required_missing",
            _ => "extract",
        }
    }
}

// Fixed selectors; they are literals that parse, which a test checks.
static LINKS: LazyLock<Option<Selector>> =
    LazyLock::new(|| Selector::parse("a[href], area[href]").ok());
static REL_LINKS: LazyLock<Option<Selector>> =
    LazyLock::new(|| Selector::parse("a[rel][href], link[rel][href]").ok());
static BASE: LazyLock<Option<Selector>> = LazyLock::new(|| Selector::parse("base[href]").ok());
static ANCHOR: LazyLock<Option<Selector>> = LazyLock::new(|| Selector::parse("a[href]").ok());

/// Refuses pages too large or too deeply nested to parse in bounded time.
fn check_size(url: &Url, html: &str) -> Result<(), HtmlError> {
    if html.len() > MAX_HTML_BYTES {
        return Err(HtmlError::TooLarge {
            url: url.to_string(),
            size: html.len(),
            limit: MAX_HTML_BYTES,
        });
    }
    if depth::within(html, depth::MAX_DEPTH).is_err() {
        return Err(HtmlError::TooDeep {
            url: url.to_string(),
            limit: depth::MAX_DEPTH,
        });
    }
    Ok(())
}

/// Extracts everything from one page of an `html` source.
pub fn extract_page(
    page_url: &Url,
    html: &str,
    src: &HtmlSource,
) -> Result<PageExtract, HtmlError> {
    check_size(page_url, html)?;
    let doc = Html::parse_document(html);
    let base = base_url(&doc, page_url);
    let mut out = PageExtract::default();
    let mut warnings = Warnings::default();
    records_into(&doc, page_url, &base, &src.extract, &mut out, &mut warnings);

    if let Some(next) = &src.next {
        let mut set = UrlSet::default();
        if let Some(sel) = &next.selector {
            for el in doc.select(sel.get()) {
                if let Some(u) = href_of(el).and_then(|h| urls::resolve(&base, h)) {
                    if &u != page_url {
                        set.insert(u);
                    }
                }
            }
        }
        if next.rel_next {
            for el in REL_LINKS.iter().flat_map(|s| doc.select(s)) {
                let is_next = el.value().attr("rel").is_some_and(|r| {
                    r.split_ascii_whitespace()
                        .any(|t| t.eq_ignore_ascii_case("next"))
                });
                if let Some(u) = is_next
                    .then(|| el.value().attr("href"))
                    .flatten()
                    .and_then(|h| urls::resolve(&base, h))
                {
                    if &u != page_url {
                        set.insert(u);
                    }
                }
            }
        }
        out.next_links = set.into_vec();
    }

    let mut set = UrlSet::default();
    for el in LINKS.iter().flat_map(|s| doc.select(s)) {
        if let Some(u) = el
            .value()
            .attr("href")
            .and_then(|h| urls::resolve(&base, h))
        {
            if src.in_scope(&u) {
                set.insert(u);
            }
        }
    }
    out.discovered_links = set.into_vec();
    out.warnings = warnings.finish();
    Ok(out)
}

/// Extracts only the records (and their detail links) from a page, e.g. a page listed in a
/// sitemap.
pub fn extract_records(
    page_url: &Url,
    html: &str,
    spec: &RecordSpec,
) -> Result<PageExtract, HtmlError> {
    check_size(page_url, html)?;
    let doc = Html::parse_document(html);
    let base = base_url(&doc, page_url);
    let mut out = PageExtract::default();
    let mut warnings = Warnings::default();
    records_into(&doc, page_url, &base, spec, &mut out, &mut warnings);
    out.warnings = warnings.finish();
    Ok(out)
}

/// Extracts a detail page's fields, to join into its listing record with
/// [`ExtractedRecord::join_detail`].
pub fn extract_detail(
    page_url: &Url,
    html: &str,
    spec: &DetailSpec,
) -> Result<DetailExtract, HtmlError> {
    check_size(page_url, html)?;
    let doc = Html::parse_document(html);
    let base = base_url(&doc, page_url);
    let root = match &spec.root {
        Some(sel) => doc
            .select(sel.get())
            .next()
            .ok_or_else(|| HtmlError::DetailRootMissing {
                url: page_url.to_string(),
                selector: sel.as_str().to_owned(),
            })?,
        None => doc.root_element(),
    };
    let mut warnings = Warnings::default();
    let (fields, missing) = fields_of(root, &spec.fields, &base, None, &mut warnings);
    if let Some(reason) = missing {
        // The page is not the detail page it should be (a session hub, an error page, a
        // changed layout): joining it would replace the stored fields with nothing.
        return Err(HtmlError::RequiredMissing {
            url: page_url.to_string(),
            reason,
        });
    }
    Ok(DetailExtract {
        fields,
        warnings: warnings.finish(),
    })
}

/// Whether any element of the page matches `sel` (a source's `session.lost` marker). A
/// page too large or too deep to parse matches nothing; its extraction reports why.
pub fn page_matches(html: &str, sel: &CssSelector) -> bool {
    if html.len() > MAX_HTML_BYTES || depth::within(html, depth::MAX_DEPTH).is_err() {
        return false;
    }
    Html::parse_document(html)
        .select(sel.get())
        .next()
        .is_some()
}

/// The first `<base href>` resolved against the page URL, when it is http(s).
fn base_url(doc: &Html, page_url: &Url) -> Url {
    BASE.iter()
        .flat_map(|s| doc.select(s))
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| urls::resolve(page_url, h))
        .unwrap_or_else(|| page_url.clone())
}

/// A link element's `href`, or its first descendant anchor's (a next "button" is often a
/// `<li class="next"><a href>`).
fn href_of(el: ElementRef<'_>) -> Option<&str> {
    el.value().attr("href").or_else(|| {
        ANCHOR
            .iter()
            .flat_map(|s| el.select(s))
            .next()?
            .value()
            .attr("href")
    })
}

/// The fields of one record, and the first required field that is missing or bad (with
/// why). Warnings about other fields are dropped when a required one fails: the rejection
/// is what the user needs to see.
fn fields_of(
    root: ElementRef<'_>,
    specs: &std::collections::BTreeMap<String, FieldSpec>,
    base: &Url,
    index: Option<usize>,
    warnings: &mut Warnings,
) -> (Map<String, Value>, Option<String>) {
    let mut fields = Map::new();
    let mut notes = Vec::new();
    let mut missing = None;
    for (name, spec) in specs {
        let v = match field_value(root, spec, base) {
            FieldValue::Value(v) => v,
            FieldValue::Missing => {
                if spec.required && missing.is_none() {
                    missing = Some(format!("required field {name:?} is missing"));
                }
                Value::Null
            }
            FieldValue::Bad(why) => {
                if spec.required && missing.is_none() {
                    missing = Some(format!("required field {name:?}: {why}"));
                } else {
                    notes.push(format!("field {name:?}: {why}"));
                }
                Value::Null
            }
        };
        fields.insert(name.clone(), v);
    }
    if missing.is_none() {
        for n in notes {
            warnings.push(index, n);
        }
    }
    (fields, missing)
}

fn records_into(
    doc: &Html,
    page_url: &Url,
    base: &Url,
    spec: &RecordSpec,
    out: &mut PageExtract,
    warnings: &mut Warnings,
) {
    let mut keys = HashSet::new();
    for (i, el) in doc.select(spec.record.get()).enumerate() {
        if i >= MAX_RECORDS_PER_PAGE {
            // Not a warning: the records past the cap would look removed to a complete run.
            out.rejected.push(Rejected {
                record: None,
                key: None,
                reason: format!("more than {MAX_RECORDS_PER_PAGE} records; the rest were not read"),
            });
            break;
        }
        let (fields, missing) = fields_of(el, &spec.fields, base, Some(i), warnings);
        let detail = spec.detail.as_ref().and_then(|d| {
            el.select(d.link.get())
                .next()
                .and_then(href_of)
                .and_then(|h| urls::resolve(base, h))
        });
        let key = match &spec.key {
            KeySpec::Url => clean_key(detail.as_ref().unwrap_or(page_url).as_str()),
            other => key_from_fields(&fields, other),
        };
        if let Some(reason) = missing {
            out.rejected.push(Rejected {
                record: Some(i),
                key: key.ok(),
                reason,
            });
            continue;
        }
        let key = match key {
            Ok(k) => k,
            Err(why) => {
                warnings.push(Some(i), format!("{why}; record skipped"));
                continue;
            }
        };
        if !keys.insert(key.clone()) {
            warnings.push(
                Some(i),
                format!("key {key:?} appears more than once on the page; later records skipped"),
            );
            continue;
        }
        if spec.detail.is_some() {
            match detail {
                Some(url) => out.detail_links.push(DetailLink {
                    key: key.clone(),
                    url,
                }),
                None => warnings.push(Some(i), format!("record {key:?} has no detail link")),
            }
        }
        out.records.push(ExtractedRecord { key, fields });
    }
}

#[cfg(test)]
mod tests;
