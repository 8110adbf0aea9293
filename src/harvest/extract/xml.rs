//! Shared by the XML extractors: gzip detection with a decompressed-size cap, and decoding
//! to UTF-8 text an XML parser reads without a second decode.

use std::borrow::Cow;
use std::io::Read;

use crate::harvest::charset::{decode_xml, strip_xml_declaration};

/// Whether `body` is a gzip stream (magic bytes 1f 8b), whatever the headers say: servers
/// send `.xml.gz` as application/octet-stream, application/x-gzip or even text/xml.
pub fn is_gzip(body: &[u8]) -> bool {
    body.starts_with(&[0x1f, 0x8b])
}

/// Why a body could not be made into text.
#[derive(Debug)]
pub(crate) enum Unpack {
    /// Decompresses to more than the cap.
    TooLarge,
    /// Not a valid gzip stream.
    Corrupt(String),
}

/// Gunzips `body` when it is gzip, refusing output past `cap` bytes (a 100 KB gzip bomb
/// can expand to gigabytes); returns plain bodies as they are.
pub(crate) fn gunzip_capped(body: &[u8], cap: usize) -> Result<Cow<'_, [u8]>, Unpack> {
    if !is_gzip(body) {
        return Ok(Cow::Borrowed(body));
    }
    let mut out = Vec::new();
    // Read one byte past the cap to tell "exactly the cap" from "more".
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(cap as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| Unpack::Corrupt(e.to_string()))?;
    if out.len() > cap {
        return Err(Unpack::TooLarge);
    }
    Ok(Cow::Owned(out))
}

/// UTF-8 text of an XML body (charset per [`crate::harvest::charset`]), without its XML
/// declaration.
pub(crate) fn xml_text(body: &[u8], content_type: Option<&str>) -> String {
    let d = decode_xml(body, content_type);
    strip_xml_declaration(&d.text).to_owned()
}

/// What [`without_declarations`] puts between `<?` and `xml`: a private-use character,
/// which no real feed writes there, so [`restore_declarations`] can take it out again.
const MARK: char = '\u{E000}';
const MARKED: &str = "<?\u{E000}xml";

/// `text` with every `<?xml` turned into `<?\u{E000}xml`, which quick-xml reads as a plain
/// processing instruction (a declaration is `<?xml` exactly) that feed-rs skips, or as text
/// inside CDATA and comments. A declaration past the start is malformed, yet feeds carry
/// them where a template pastes in a fragment; feed-rs switches its decoder on each one it
/// reads, and quick-xml panics when one names another encoding after the first buffer
/// (found by fuzzing). The text is UTF-8 by now, so what they declare is moot. Every
/// occurrence is marked, without deciding where comments, CDATA or instructions end: two
/// earlier versions did, and the fuzzer found inputs where that decision and quick-xml's
/// differed. Returns whether anything was marked; then [`restore_declarations`] puts the
/// `<?xml` that CDATA or text carried back into the extracted values.
pub(crate) fn without_declarations(text: String) -> (String, bool) {
    if !text.contains("<?xml") {
        return (text, false);
    }
    (text.replace("<?xml", MARKED), true)
}

/// Undoes [`without_declarations`] in a value taken from the marked text.
pub(crate) fn restore_declarations(s: String) -> String {
    if s.contains(MARK) {
        s.replace(MARKED, "<?xml")
    } else {
        s
    }
}

/// The text of a predefined or character entity reference (`amp`, `#233`, `#xE9`).
pub(crate) fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_by_magic_with_a_cap() {
        let plain = b"<urlset/>";
        assert_eq!(&*gunzip_capped(plain, 10).unwrap(), plain);
        assert_eq!(&*gunzip_capped(&gz(plain), 9).unwrap(), plain);
        assert!(matches!(
            gunzip_capped(&gz(plain), 8),
            Err(Unpack::TooLarge)
        ));
        let bomb = gz(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            gunzip_capped(&bomb, 1 << 20),
            Err(Unpack::TooLarge)
        ));
        assert!(matches!(
            gunzip_capped(&[0x1f, 0x8b, 0, 1, 2], 100),
            Err(Unpack::Corrupt(_))
        ));
    }

    #[test]
    fn entities() {
        assert_eq!(entity("amp"), Some('&'));
        assert_eq!(entity("#233"), Some('é'));
        assert_eq!(entity("#xE9"), Some('é'));
        assert_eq!(entity("#0"), None);
        assert_eq!(entity("#xD800"), None);
        assert_eq!(entity("nbsp"), None);
    }
}
