//! The HTTP `Link` header (RFC 8288 §3), parsed properly.
//!
//! `Link: <https://api.example/items?page=2>; rel="next", <...>; rel="last"`. Commas and
//! semicolons inside `<...>` and quoted strings do not split; `rel` may hold several
//! space-separated relation types and is compared case-insensitively; only a link's first
//! `rel` counts (§3.3). Malformed parts are skipped, not fatal: a bad `Link` header must not
//! lose the page it came with.

/// One link: its target as written (resolve it against the request URL) and its params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    /// Parameter names lowercased; values unquoted.
    pub params: Vec<(String, String)>,
}

impl Link {
    /// The relation types of the first `rel` parameter, lowercased.
    pub fn rels(&self) -> impl Iterator<Item = String> + '_ {
        self.params
            .iter()
            .find(|(n, _)| n == "rel")
            .map(|(_, v)| v.split_ascii_whitespace().map(str::to_ascii_lowercase))
            .into_iter()
            .flatten()
    }

    pub fn has_rel(&self, rel: &str) -> bool {
        self.rels().any(|r| r.eq_ignore_ascii_case(rel))
    }
}

/// Parses one `Link` header value (which may hold several links).
pub fn parse(value: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    loop {
        p.skip(|b| b == b',' || is_ows(b));
        if p.done() {
            return links;
        }
        match p.link() {
            Some(l) => links.push(l),
            None => p.skip_to_next_link(),
        }
        if links.len() >= 256 {
            return links;
        }
    }
}

/// The `rel="next"` target among all `Link` headers, as written.
pub fn next_target<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .flat_map(parse)
        .find(|l| l.has_rel("next"))
        .map(|l| l.target)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn take(&mut self, f: impl Fn(u8) -> bool) -> &str {
        let start = self.i;
        self.skip(f);
        // Only ASCII predicates are used, so the slice is on char boundaries.
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default()
    }

    /// After a malformed link: move past the next comma outside `<>` and quotes.
    fn skip_to_next_link(&mut self) {
        let mut quoted = false;
        let mut angle = false;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'\\' if quoted => self.i += 1,
                b'"' if !angle => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => return,
                _ => {}
            }
        }
    }

    fn link(&mut self) -> Option<Link> {
        if self.peek() != Some(b'<') {
            return None;
        }
        self.i += 1;
        let target = self.take(|b| b != b'>').trim().to_owned();
        if self.peek() != Some(b'>') {
            return None;
        }
        self.i += 1;
        let mut params = Vec::new();
        loop {
            self.skip(is_ows);
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => self.i += 1,
                Some(_) => return None,
            }
            self.skip(is_ows);
            let name = self.take(is_tchar).to_ascii_lowercase();
            if name.is_empty() {
                // `;` followed by nothing (trailing) or garbage.
                if matches!(self.peek(), None | Some(b',')) {
                    break;
                }
                return None;
            }
            self.skip(is_ows);
            let mut value = String::new();
            if self.peek() == Some(b'=') {
                self.i += 1;
                self.skip(is_ows);
                if self.peek() == Some(b'"') {
                    value = self.quoted()?;
                } else {
                    value = self.take(is_tchar).to_owned();
                }
            }
            params.push((name, value));
        }
        Some(Link { target, params })
    }

    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                _ => out.push(b),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn github_style_header() {
        let v = r#"<https://api.example/items?page=2&per_page=100>; rel="next", <https://api.example/items?page=9>; rel="last""#;
        assert_eq!(
            next_target([v]).as_deref(),
            Some("https://api.example/items?page=2&per_page=100")
        );
        let links = parse(v);
        assert_eq!(links.len(), 2);
        assert!(links[1].has_rel("LAST"));
    }

    #[test]
    fn tricky_but_valid_headers() {
        // Commas inside the URL and inside a quoted title; several rels; unquoted rel;
        // extra params; case-insensitive names.
        let v = r##"</a,b>; title="x, \"y\"; z"; REL="prev next" , <  /c  >;rel=last;anchor="#f""##;
        let links = parse(v);
        assert_eq!(links.len(), 2, "{links:?}");
        assert_eq!(links[0].target, "/a,b");
        assert_eq!(links[0].params[0], ("title".into(), "x, \"y\"; z".into()));
        assert!(links[0].has_rel("next") && links[0].has_rel("prev"));
        assert_eq!(links[1].target, "/c");
        assert!(links[1].has_rel("last"));
        // Only the first rel counts.
        assert!(!parse(r#"</x>; rel=prev; rel=next"#)[0].has_rel("next"));
        // Several header lines.
        assert_eq!(
            next_target(["</1>; rel=prev", "</2>; rel=next"]).as_deref(),
            Some("/2")
        );
    }

    #[test]
    fn malformed_parts_are_skipped() {
        let v = r#"garbage, </ok>; rel=next"#;
        assert_eq!(next_target([v]).as_deref(), Some("/ok"));
        assert_eq!(parse("<unterminated; rel=next").len(), 0);
        assert_eq!(parse(r#"</q>; rel="next"#).len(), 0);
        assert_eq!(parse("").len(), 0);
        assert_eq!(next_target(["</x>; rel=nextish"]), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn formatted_links_round_trip(target in "[a-z0-9/?=&,;.-]{0,30}", rel in "[a-z]{1,8}") {
            let v = format!("<{target}>; rel=\"{rel}\"; title=\"a,b\"");
            let links = parse(&v);
            prop_assert_eq!(links.len(), 1);
            prop_assert_eq!(&links[0].target, target.trim());
            prop_assert!(links[0].has_rel(&rel));
        }
    }
}
