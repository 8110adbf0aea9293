//! A cheap estimate of how deeply a page nests elements, taken before parsing.
//!
//! html5ever's tree builder scans the stack of open elements for many start tags, so its
//! time grows with the square of the nesting depth: 50,000 unclosed `<div>`s (a 300 KB
//! page) cost seconds. Browsers cap tree depth (Chromium at 512) for the same reason. This
//! scan counts start and end tags, ignoring void elements, elements whose end tags are
//! optional or implied (`p`, `li`, `td`, ... which the parser closes itself), comments and
//! raw-text contents. It over-estimates tag soup with unclosed formatting tags, so the
//! limit is generous.

/// Deepest estimated nesting accepted.
pub(crate) const MAX_DEPTH: usize = 4096;

/// Elements that never count: void elements and those whose end tag the parser implies.
const UNCOUNTED: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "param", "keygen", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
    "tbody", "thead", "tfoot", "colgroup", "caption", "rb", "rt", "rp", "rtc", "html", "head",
    "body", "frame", "basefont", "bgsound",
];

/// Elements whose contents are text, not markup.
const RAW_TEXT: &[&str] = &[
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
];

/// `Ok` when the estimated depth stays within `limit`, else the depth where it passed it.
pub(crate) fn within(html: &str, limit: usize) -> Result<(), usize> {
    let b = html.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(off) = memchr(b'<', &b[i..]) {
        i += off + 1;
        if b[i..].starts_with(b"!--") {
            i = find(b, i + 3, b"-->").map_or(b.len(), |j| j + 3);
            continue;
        }
        let end_tag = b.get(i) == Some(&b'/');
        let start = if end_tag { i + 1 } else { i };
        let name_len = b[start..]
            .iter()
            .position(|c| !c.is_ascii_alphanumeric() && *c != b'-' && *c != b':')
            .unwrap_or(b.len() - start);
        if name_len == 0 || !b[start].is_ascii_alphabetic() {
            continue;
        }
        let name = html[start..start + name_len].to_ascii_lowercase();
        let close = memchr(b'>', &b[start..]).map_or(b.len(), |j| start + j);
        let self_closing = close > 0 && b.get(close - 1) == Some(&b'/');
        i = close.min(b.len());
        if UNCOUNTED.contains(&name.as_str()) {
            continue;
        }
        if end_tag {
            depth = depth.saturating_sub(1);
        } else if !self_closing {
            if RAW_TEXT.contains(&name.as_str()) {
                // Skip to the matching end tag; its contents are not markup.
                let closing = format!("</{name}");
                i = find_ci(b, i, closing.as_bytes()).unwrap_or(b.len());
                continue;
            }
            depth += 1;
            if depth > limit {
                return Err(depth);
            }
        }
    }
    Ok(())
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates() {
        assert_eq!(within("<div><div></div></div>", 2), Ok(()));
        assert_eq!(within("<div><div><div>", 2), Err(3));
        // Implied end tags, void elements, comments and scripts do not count.
        let soup = "<table>".to_owned() + &"<tr><td>x<br><p>y<li>z".repeat(10_000) + "</table>";
        assert_eq!(within(&soup, 3), Ok(()));
        assert_eq!(
            within(
                "<!-- <div><div><div> --><script>'<div><div><div>'</script>",
                1
            ),
            Ok(())
        );
        assert_eq!(within("<div/><div/><div/>", 1), Ok(()));
        assert_eq!(within("< div <3 <<< >>", 1), Ok(()));
    }
}
