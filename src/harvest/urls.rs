//! URL joining and normalisation for links found in pages.
//!
//! One function decides what a link becomes, so the frontier, the dedup sets and the record
//! keys built from URLs agree: resolve against the base, keep http(s) only, drop the
//! fragment (it never reaches the server), drop an empty `?`, refuse over-long URLs. The
//! `url` crate already lowercases scheme and host, removes default ports and dot segments
//! and percent-encodes what must be.

use url::Url;

use super::limits::MAX_URL_BYTES;

/// `u` without its fragment.
pub fn without_fragment(mut u: Url) -> Url {
    u.set_fragment(None);
    if u.query() == Some("") {
        u.set_query(None);
    }
    u
}

/// Resolves `href` (as written in a page) against `base` and normalises it; `None` for
/// links that are not fetchable http(s) URLs (`javascript:`, `mailto:`, malformed, huge).
pub fn resolve(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.len() > MAX_URL_BYTES {
        return None;
    }
    let u = base.join(href).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return None;
    }
    let u = without_fragment(u);
    (u.as_str().len() <= MAX_URL_BYTES).then_some(u)
}

/// Whether two URLs share scheme, host and port (the origin credentials are scoped to).
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// An order-keeping, capped, deduplicating list of URLs.
#[derive(Debug, Default)]
pub(crate) struct UrlSet {
    seen: std::collections::HashSet<String>,
    list: Vec<Url>,
}

impl UrlSet {
    /// Adds `u` unless present or full; returns whether it was added.
    pub(crate) fn insert(&mut self, u: Url) -> bool {
        if self.list.len() >= super::limits::MAX_LINKS_PER_PAGE
            || !self.seen.insert(u.as_str().to_owned())
        {
            return false;
        }
        self.list.push(u);
        true
    }

    pub(crate) fn into_vec(self) -> Vec<Url> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_normalises() {
        let base = Url::parse("http://Reg.Example:80/app/list.jsp?p=1").unwrap();
        let r = |h| resolve(&base, h).map(|u| u.to_string());
        assert_eq!(
            r("detail.jsp?id=4#top").as_deref(),
            Some("http://reg.example/app/detail.jsp?id=4")
        );
        assert_eq!(r("../x/./y").as_deref(), Some("http://reg.example/x/y"));
        assert_eq!(r("//other.org/a?").as_deref(), Some("http://other.org/a"));
        assert_eq!(r("  /a b ").as_deref(), Some("http://reg.example/a%20b"));
        assert_eq!(
            r("#only-fragment").as_deref(),
            Some("http://reg.example/app/list.jsp?p=1")
        );
        for bad in [
            "javascript:void(0)",
            "mailto:x@y.z",
            "",
            "http://",
            "data:text/html,hi",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
        assert_eq!(r(&format!("/{}", "a".repeat(MAX_URL_BYTES))), None);
    }

    #[test]
    fn url_set_dedups_in_order() {
        let mut s = UrlSet::default();
        for u in ["http://a/1", "http://a/2", "http://a/1"] {
            s.insert(Url::parse(u).unwrap());
        }
        let v: Vec<_> = s.into_vec().into_iter().map(String::from).collect();
        assert_eq!(v, ["http://a/1", "http://a/2"]);
    }
}
