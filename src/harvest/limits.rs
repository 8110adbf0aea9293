//! Hard caps on what extraction accepts and produces.
//!
//! Extraction runs on a bounded CPU pool shared by every tenant, so one hostile or broken
//! page must not take seconds or gigabytes. The fetch stage caps bodies on the wire; these
//! caps hold again here so the extractors are safe to call on anything (benches, property
//! tests, push bodies). A source may lower some of them (push `max_body_bytes`), never raise.

/// Largest HTML page parsed. Real listing pages are well under 1 MiB.
pub const MAX_HTML_BYTES: usize = 16 << 20;
/// Largest JSON API response parsed.
pub const MAX_JSON_BYTES: usize = 64 << 20;
/// Largest sitemap after decompression; the sitemap protocol allows 50 MB (uncompressed).
pub const MAX_SITEMAP_BYTES: usize = 64 << 20;
/// Largest feed document parsed.
pub const MAX_FEED_BYTES: usize = 32 << 20;
/// Largest CSV file parsed (decoded text is held in memory once).
pub const MAX_CSV_BYTES: usize = 128 << 20;
/// Largest push body accepted, whatever the source says.
pub const MAX_PUSH_BYTES: usize = 64 << 20;
/// Largest robots.txt read; Google reads 500 KiB and ignores the rest (RFC 9309 §2.5).
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;
/// Largest source definition accepted (JSON or TOML text).
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;

/// Most records taken from one page, response, feed or file.
pub const MAX_RECORDS_PER_PAGE: usize = 100_000;
/// Most links (next, detail, discovered) reported from one HTML page.
pub const MAX_LINKS_PER_PAGE: usize = 10_000;
/// Most entries taken from one sitemap; the protocol's own limit.
pub const MAX_SITEMAP_ENTRIES: usize = 50_000;
/// Longest field value kept (bytes); longer values are cut at a character boundary.
pub const MAX_FIELD_BYTES: usize = 1 << 20;
/// Longest record key (bytes); records with longer keys are skipped.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest URL kept (bytes); browsers and servers commonly stop near 8 KiB.
pub const MAX_URL_BYTES: usize = 4096;
/// Most warnings kept per page, so a page of a million bad rows stays small.
pub const MAX_WARNINGS: usize = 100;
/// Longest selector, regex or JSONPath text in a definition.
pub const MAX_PATTERN_CHARS: usize = 2048;
/// Compiled size limit for regexes (bytes); the regex crate matches in linear time, this
/// bounds the memory of huge alternations.
pub const MAX_REGEX_COMPILED_BYTES: usize = 2 << 20;
