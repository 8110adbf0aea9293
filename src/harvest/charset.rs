//! Bytes to UTF-8 text, honouring what the response and the document declare.
//!
//! Order of precedence, following the WHATWG Encoding Standard and HTML's encoding
//! sniffing (what browsers do, so pages decode as their authors saw them):
//! 1. a byte order mark: it is a fact about the bytes, while a Content-Type charset is
//!    often a server-wide default that the file contradicts;
//! 2. the Content-Type `charset` parameter;
//! 3. the document's own declaration: HTML `<meta charset>` / `<meta http-equiv>` in the
//!    first bytes, or the XML declaration's `encoding`;
//! 4. UTF-8.
//!
//! Labels are resolved by the Encoding Standard, so `iso-8859-1` and `latin1` decode as
//! windows-1252 (which is what such pages really contain: '€' and '’' at 0x80–0x9F).
//! Malformed bytes become U+FFFD; decoding never fails and never loses a page.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252, X_USER_DEFINED};

/// How far into a document a `<meta charset>` is looked for. The HTML standard says 1024
/// bytes; old server-generated pages often have long comment or script blocks first, and
/// browsers look further in practice.
const PRESCAN_BYTES: usize = 4096;

/// Where the encoding used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharsetSource {
    Bom,
    ContentType,
    /// `<meta charset>` / `<meta http-equiv="Content-Type">` or the XML declaration.
    Document,
    /// The source definition named it (CSV `encoding`).
    Configured,
    Default,
}

/// Decoded text and how it was decoded.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: &'static Encoding,
    pub source: CharsetSource,
    /// Some bytes were malformed and became U+FFFD.
    pub had_errors: bool,
}

/// The encoding named by a Content-Type header's `charset` parameter.
pub fn from_content_type(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        Encoding::for_label(value.as_bytes())
    })
}

/// Decodes an HTML document.
pub fn decode_html<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    decode_with(bytes, content_type, None, |b| {
        html_meta_charset(b).map(for_html_meta)
    })
}

/// Decodes an XML document (feeds, sitemaps).
pub fn decode_xml<'a>(bytes: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    decode_with(bytes, content_type, None, xml_declared_encoding)
}

/// Decodes text that declares nothing itself (CSV, NDJSON), with an optional configured
/// encoding that overrides the Content-Type (servers often mislabel CSV exports).
pub fn decode_text<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    configured: Option<&'static Encoding>,
) -> Decoded<'a> {
    decode_with(bytes, content_type, configured, |_| None)
}

fn decode_with<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    configured: Option<&'static Encoding>,
    sniff: impl FnOnce(&[u8]) -> Option<&'static Encoding>,
) -> Decoded<'a> {
    let (encoding, source, body) = if let Some((enc, len)) = Encoding::for_bom(bytes) {
        (enc, CharsetSource::Bom, &bytes[len..])
    } else if let Some(enc) = configured {
        (enc, CharsetSource::Configured, bytes)
    } else if let Some(enc) = content_type.and_then(from_content_type) {
        (enc, CharsetSource::ContentType, bytes)
    } else if let Some(enc) = sniff(bytes) {
        (enc, CharsetSource::Document, bytes)
    } else {
        (UTF_8, CharsetSource::Default, bytes)
    };
    let (text, had_errors) = encoding.decode_without_bom_handling(body);
    Decoded {
        text,
        encoding,
        source,
        had_errors,
    }
}

/// A `<meta>` declaration of UTF-16 is a lie (the prescan could read it as ASCII), and
/// x-user-defined means windows-1252: both per the HTML standard.
fn for_html_meta(enc: &'static Encoding) -> &'static Encoding {
    if enc == UTF_16LE || enc == UTF_16BE {
        UTF_8
    } else if enc == X_USER_DEFINED {
        WINDOWS_1252
    } else {
        enc
    }
}

/// Finds `<meta charset=...>` or `<meta http-equiv="content-type" content="...charset=...">`
/// in the first bytes of an HTML document, skipping comments.
pub fn html_meta_charset(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(PRESCAN_BYTES)];
    let mut i = 0;
    while i < head.len() {
        let rest = &head[i..];
        if rest.starts_with(b"<!--") {
            i += find(rest, b"-->").map_or(head.len(), |j| j + 3);
            continue;
        }
        if rest.len() > 5
            && rest[0] == b'<'
            && rest[1..5].eq_ignore_ascii_case(b"meta")
            && is_space_or_slash(rest[5])
        {
            let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
            if let Some(enc) = meta_tag_charset(&rest[5..end]) {
                return Some(enc);
            }
            i += end.max(1);
            continue;
        }
        i += 1;
    }
    None
}

fn is_space_or_slash(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The attributes of one `<meta ...>` tag (without `<meta` and `>`).
fn meta_tag_charset(attrs: &[u8]) -> Option<&'static Encoding> {
    let mut charset = None;
    let mut http_equiv_ct = false;
    let mut content = None;
    for (name, value) in attributes(attrs) {
        if name.eq_ignore_ascii_case(b"charset") {
            charset = charset.or_else(|| Encoding::for_label(trim(value)));
        } else if name.eq_ignore_ascii_case(b"http-equiv") {
            http_equiv_ct = trim(value).eq_ignore_ascii_case(b"content-type");
        } else if name.eq_ignore_ascii_case(b"content") {
            content = Some(value);
        }
    }
    charset.or_else(|| {
        if !http_equiv_ct {
            return None;
        }
        let content = std::str::from_utf8(content?).ok()?;
        from_content_type(content).or_else(|| {
            // `content="charset=windows-1252"` without a media type also occurs.
            from_content_type(&format!("x;{content}"))
        })
    })
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A forgiving attribute tokenizer: `name`, `name=value`, `name="value"`, `name='value'`.
fn attributes(mut s: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    loop {
        while let [b, rest @ ..] = s {
            if is_space_or_slash(*b) {
                s = rest;
            } else {
                break;
            }
        }
        if s.is_empty() {
            return out;
        }
        let name_end = s
            .iter()
            .position(|&b| b == b'=' || is_space_or_slash(b))
            .unwrap_or(s.len());
        let name = &s[..name_end];
        s = &s[name_end..];
        let mut t = s.trim_ascii_start();
        if let [b'=', rest @ ..] = t {
            t = rest.trim_ascii_start();
            let (value, rest) = match t {
                [q @ (b'"' | b'\''), rest @ ..] => {
                    let end = rest.iter().position(|b| b == q).unwrap_or(rest.len());
                    (&rest[..end], &rest[(end + 1).min(rest.len())..])
                }
                _ => {
                    let end = t
                        .iter()
                        .position(|&b| is_space_or_slash(b))
                        .unwrap_or(t.len());
                    (&t[..end], &t[end..])
                }
            };
            out.push((name, value));
            s = rest;
        } else {
            out.push((name, &b""[..]));
            if name.is_empty() {
                // Not an attribute at all ('=' alone etc.); step over one byte.
                s = s.get(1..).unwrap_or_default();
            }
        }
        if out.len() > 64 {
            return out;
        }
    }
}

/// The `encoding` of an XML declaration (`<?xml version="1.0" encoding="ISO-8859-1"?>`).
pub fn xml_declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let decl = xml_declaration(bytes)?;
    attributes(&decl[5..decl.len() - 2])
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"encoding"))
        .and_then(|(_, v)| Encoding::for_label(trim(v)))
        // A declared UTF-16 on bytes we are reading as ASCII cannot be right.
        .filter(|e| *e != UTF_16LE && *e != UTF_16BE)
}

/// The `<?xml ... ?>` declaration at the start of `bytes`, if any.
fn xml_declaration(bytes: &[u8]) -> Option<&[u8]> {
    let t = bytes.trim_ascii_start();
    if !t.starts_with(b"<?xml") || !t.get(5).is_some_and(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let end = find(&t[..t.len().min(512)], b"?>")?;
    Some(&t[..end + 2])
}

/// Text without its XML declaration: once decoded to UTF-8, a declaration naming another
/// encoding would make an XML parser decode a second time.
pub fn strip_xml_declaration(text: &str) -> &str {
    match xml_declaration(text.as_bytes()) {
        Some(decl) => {
            let start = text.len() - text.trim_start().len();
            &text[start + decl.len()..]
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{ISO_8859_2, WINDOWS_1250};

    #[test]
    fn content_type_charset_wins_over_meta() {
        let page = b"<html><head><meta charset=\"utf-8\"></head><body>caf\xe9 \x80</body></html>";
        let d = decode_html(page, Some("text/html; charset=ISO-8859-1"));
        assert_eq!(d.source, CharsetSource::ContentType);
        assert_eq!(d.encoding, WINDOWS_1252);
        assert!(d.text.contains("café €"), "{}", d.text);
        assert!(!d.had_errors);
    }

    #[test]
    fn meta_charset_and_http_equiv() {
        let page = b"<!-- <meta charset=utf-16> --><META http-equiv='Content-Type' content='text/html; charset=windows-1250'>\x9a";
        let d = decode_html(page, Some("text/html"));
        assert_eq!(
            (d.encoding, d.source),
            (WINDOWS_1250, CharsetSource::Document)
        );
        assert!(d.text.ends_with('š'));
        let d = decode_html(b"<meta charset=iso-8859-2>\xb1", None);
        assert_eq!(d.encoding, ISO_8859_2);
        assert!(d.text.ends_with('ą'));
        // A meta saying UTF-16 is read as UTF-8, per the HTML standard.
        assert_eq!(decode_html(b"<meta charset=utf-16>", None).encoding, UTF_8);
        // Nothing declared: UTF-8.
        assert_eq!(decode_html(b"<p>hi", None).source, CharsetSource::Default);
    }

    #[test]
    fn bom_wins_and_is_removed() {
        let d = decode_html(
            b"\xef\xbb\xbf<p>\xc3\xa9",
            Some("text/html; charset=windows-1252"),
        );
        assert_eq!((d.encoding, d.source), (UTF_8, CharsetSource::Bom));
        assert_eq!(d.text, "<p>é");
        let d = decode_text(b"\xff\xfea\x00", None, Some(WINDOWS_1252));
        assert_eq!((d.encoding, &*d.text), (UTF_16LE, "a"));
    }

    #[test]
    fn malformed_bytes_become_replacement_characters() {
        let d = decode_html(b"ok \xff\xfe\xc3 end", Some("text/html; charset=utf-8"));
        assert!(d.had_errors);
        assert!(d.text.starts_with("ok \u{fffd}") && d.text.ends_with(" end"));
    }

    #[test]
    fn xml_declarations() {
        let doc = b"  <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><rss>\xe9</rss>";
        let d = decode_xml(doc, Some("application/xml"));
        assert_eq!(
            (d.encoding, d.source),
            (WINDOWS_1252, CharsetSource::Document)
        );
        assert_eq!(strip_xml_declaration(&d.text), "<rss>é</rss>");
        assert_eq!(
            strip_xml_declaration("<?xml-stylesheet x?><a/>"),
            "<?xml-stylesheet x?><a/>"
        );
        assert_eq!(
            decode_xml(b"<?xml version='1.0'?><a/>", None).encoding,
            UTF_8
        );
    }

    #[test]
    fn content_type_parsing() {
        assert_eq!(
            from_content_type("text/csv;charset=\"latin1\""),
            Some(WINDOWS_1252)
        );
        assert_eq!(from_content_type("text/csv; CHARSET = utf-8 "), Some(UTF_8));
        assert_eq!(from_content_type("text/csv; charset=nope"), None);
        assert_eq!(from_content_type("charset=utf-8"), None);
    }
}
