//! Deterministic content of the sample site (pure: no I/O).

use std::fmt::Write as _;
use std::io::Write as _;

/// Entities per listing page.
pub const PAGE_SIZE: u32 = 50;
/// Detail URLs per gzipped sitemap file.
const SITEMAP_CHUNK: u32 = 1000;

const SECTORS: &[&str] = &[
    "Information and Communications Technology",
    "Construction",
    "Health",
    "Agriculture",
    "Hospitality",
    "Transport and Logistics",
];
const VERBS: &[&str] = &[
    "Manage",
    "Design",
    "Apply",
    "Develop",
    "Maintain",
    "Implement",
    "Evaluate",
];
const OBJECTS: &[&str] = &[
    "network security",
    "workplace safety procedures",
    "client records",
    "café operations",
    "supply chains",
    "résumé screening",
    "data pipelines",
    "irrigation systems",
];

/// One registry entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub id: u32,
    pub code: String,
    pub title: String,
    pub sector: &'static str,
    pub status: &'static str,
    pub released: String,
    pub fee_eur: u32,
    pub description: String,
}

/// The site: `entities` registry entries, with a revision number that changes some of them
/// (so a re-harvest finds changed and removed records).
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub entities: u32,
    /// 0 = the original content. Each revision edits every 7th entity's title and removes
    /// the last `revision * 3` entities.
    pub revision: u32,
}

impl Site {
    pub fn new(entities: u32) -> Self {
        Site {
            entities,
            revision: 0,
        }
    }

    /// Entities currently published.
    pub fn live_count(&self) -> u32 {
        self.entities.saturating_sub(self.revision * 3)
    }

    pub fn pages(&self) -> u32 {
        self.live_count().div_ceil(PAGE_SIZE).max(1)
    }

    pub fn entity(&self, id: u32) -> Option<Entity> {
        if id == 0 || id > self.live_count() {
            return None;
        }
        let h = id.wrapping_mul(2_654_435_761);
        let mut title = format!(
            "{} {}",
            VERBS[(h % VERBS.len() as u32) as usize],
            OBJECTS[((h >> 8) % OBJECTS.len() as u32) as usize]
        );
        if self.revision > 0 && id.is_multiple_of(7) {
            write!(title, " (revision {})", self.revision).ok();
        }
        Some(Entity {
            id,
            code: format!("ICT{:05}", id),
            title,
            sector: SECTORS[((h >> 16) % SECTORS.len() as u32) as usize],
            status: if id.is_multiple_of(5) {
                "Superseded"
            } else {
                "Current"
            },
            released: format!(
                "20{:02}-{:02}-{:02}",
                10 + id % 15,
                1 + id % 12,
                1 + id % 28
            ),
            fee_eur: 100 + (h >> 20) % 900,
            description: format!(
                "Describes the skills and knowledge required to {} in a workplace’s day-to-day \
                 operations. Entry {id} of the national register — fee €{}.",
                OBJECTS[((h >> 8) % OBJECTS.len() as u32) as usize],
                100 + (h >> 20) % 900
            ),
        })
    }

    /// Listing page `page` (1-based) as UTF-8 HTML; `Some` only for existing pages.
    /// `style` decides the link shapes (JSP query strings, or static paths for nginx).
    pub fn listing_html(&self, page: u32, style: UrlStyle) -> Option<String> {
        if page == 0 || page > self.pages() {
            return None;
        }
        let first = (page - 1) * PAGE_SIZE + 1;
        let last = (page * PAGE_SIZE).min(self.live_count());
        let mut h = String::with_capacity(24 * 1024);
        h.push_str(
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<html><head>\n",
        );
        h.push_str(
            "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">\n",
        );
        writeln!(
            h,
            "<title>National Register — page {page}</title></head><body>"
        )
        .ok();
        h.push_str(
            "<div id=\"header\"><a href=\"/\">Home</a> | <a href=\"/feed.xml\">Feed</a></div>\n",
        );
        h.push_str("<table class=\"results\" border=\"1\"><tr><th>Code</th><th>Title</th><th>Status</th><th>Released</th></tr>\n");
        for id in first..=last {
            let e = self.entity(id)?;
            writeln!(
                h,
                "<tr class=\"result\"><td class=\"code\"><a href=\"{}\">{}</a></td><td class=\"title\">{}</td>\
                 <td class=\"status\">{}</td><td class=\"released\">{}</td></tr>",
                style.detail(id),
                e.code,
                html_escape(&e.title),
                e.status,
                e.released
            )
            .ok();
        }
        h.push_str("</table>\n<p class=\"pager\">");
        if page > 1 {
            write!(h, "<a href=\"{}\">« Previous</a> ", style.listing(page - 1)).ok();
        }
        write!(h, "Page {page} of {} ", self.pages()).ok();
        if page < self.pages() {
            write!(
                h,
                "<a class=\"next\" href=\"{}\">Next »</a>",
                style.listing(page + 1)
            )
            .ok();
        }
        h.push_str("</p>\n</body></html>\n");
        Some(h)
    }

    pub fn detail_html(&self, id: u32) -> Option<String> {
        let e = self.entity(id)?;
        Some(format!(
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<html><head>\n\
             <meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">\n\
             <title>{code} — {title}</title></head><body>\n\
             <h1 class=\"title\">{title}</h1>\n<dl class=\"standard\">\n\
             <dt>Code</dt><dd id=\"code\">{code}</dd>\n<dt>Sector</dt><dd id=\"sector\">{sector}</dd>\n\
             <dt>Status</dt><dd id=\"status\">{status}</dd>\n<dt>Released</dt><dd id=\"released\">{released}</dd>\n\
             <dt>Fee</dt><dd id=\"fee\">€{fee}</dd>\n</dl>\n<div id=\"description\"><p>{desc}</p></div>\n\
             </body></html>\n",
            code = e.code,
            title = html_escape(&e.title),
            sector = e.sector,
            status = e.status,
            released = e.released,
            fee = e.fee_eur,
            desc = html_escape(&e.description),
        ))
    }

    /// The sitemap index pointing at gzipped sitemaps of detail URLs.
    pub fn sitemap_index(&self, base: &str) -> String {
        let n = self.live_count().div_ceil(SITEMAP_CHUNK).max(1);
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
        for i in 1..=n {
            writeln!(
                x,
                "<sitemap><loc>{base}/sitemaps/sitemap-{i}.xml.gz</loc></sitemap>"
            )
            .ok();
        }
        x.push_str("</sitemapindex>\n");
        x
    }

    /// Gzipped sitemap `i` (1-based).
    pub fn sitemap_gz(&self, i: u32, base: &str, style: UrlStyle) -> Option<Vec<u8>> {
        let first = (i.checked_sub(1)?) * SITEMAP_CHUNK + 1;
        if first > self.live_count() {
            return None;
        }
        let last = (i * SITEMAP_CHUNK).min(self.live_count());
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n");
        for id in first..=last {
            let e = self.entity(id)?;
            writeln!(
                x,
                "<url><loc>{base}{}</loc><lastmod>{}</lastmod></url>",
                style.detail(id),
                e.released
            )
            .ok();
        }
        x.push_str("</urlset>\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(x.as_bytes()).ok()?;
        gz.finish().ok()
    }

    /// RSS 2.0 of the 50 newest entities.
    pub fn feed_xml(&self, base: &str, style: UrlStyle) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel>\n<title>National Register — new standards</title>\n");
        writeln!(
            x,
            "<link>{base}/</link><description>Newest entries</description>"
        )
        .ok();
        let last = self.live_count();
        for id in (last.saturating_sub(49).max(1)..=last).rev() {
            if let Some(e) = self.entity(id) {
                writeln!(
                    x,
                    "<item><title>{}</title><link>{base}{}</link><guid isPermaLink=\"false\">{}</guid><description>{}</description></item>",
                    xml_escape(&e.title),
                    style.detail(id),
                    e.code,
                    xml_escape(&e.description)
                )
                .ok();
            }
        }
        x.push_str("</channel></rss>\n");
        x
    }

    /// One page of the JSON API: entities after `after` (an id), `limit` of them.
    pub fn api_page(&self, after: u32, limit: u32) -> serde_json::Value {
        let limit = limit.clamp(1, 500);
        let items: Vec<serde_json::Value> = (after + 1..=(after + limit).min(self.live_count()))
            .filter_map(|id| self.entity(id))
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "code": e.code, "title": e.title, "sector": e.sector,
                    "status": e.status, "released": e.released, "fee_eur": e.fee_eur,
                })
            })
            .collect();
        let next = after + limit;
        let next_token = (next < self.live_count()).then(|| format!("t{next}"));
        serde_json::json!({"items": items, "next_token": next_token})
    }
}

/// How the site's internal links look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    /// `/registry/list.jsp?page=N`, `/registry/detail.jsp?id=N` — the live demo server.
    Jsp,
    /// `/registry/list/N.html`, `/registry/detail/N.html` — static files for nginx.
    Static,
}

impl UrlStyle {
    pub fn listing(self, page: u32) -> String {
        match self {
            UrlStyle::Jsp => format!("/registry/list.jsp?page={page}"),
            UrlStyle::Static => format!("/registry/list/{page}.html"),
        }
    }

    pub fn detail(self, id: u32) -> String {
        match self {
            UrlStyle::Jsp => format!("/registry/detail.jsp?id={id}"),
            UrlStyle::Static => format!("/registry/detail/{id}.html"),
        }
    }
}

/// HTML as the site serves it: windows-1252 bytes (characters outside it become `&#N;`).
pub fn to_windows_1252(html: &str) -> Vec<u8> {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(html);
    bytes.into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_escape(s: &str) -> String {
    html_escape(s).replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_deterministic_and_revisions_change_it() {
        let a = Site::new(1000);
        assert_eq!(
            a.listing_html(3, UrlStyle::Jsp),
            a.listing_html(3, UrlStyle::Jsp)
        );
        assert_eq!(a.pages(), 20);
        assert!(a.listing_html(21, UrlStyle::Jsp).is_none());
        let b = Site {
            entities: 1000,
            revision: 1,
        };
        assert_eq!(b.live_count(), 997);
        assert_ne!(a.entity(7).unwrap().title, b.entity(7).unwrap().title);
        assert_eq!(a.entity(8), b.entity(8));
        assert!(b.entity(998).is_none());
    }

    #[test]
    fn listing_links_and_charset() {
        let s = Site::new(120);
        let p1 = s.listing_html(1, UrlStyle::Jsp).unwrap();
        assert_eq!(p1.matches("<tr class=\"result\">").count(), 50);
        assert!(p1.contains("href=\"/registry/list.jsp?page=2\""));
        let last = s.listing_html(3, UrlStyle::Static).unwrap();
        assert_eq!(last.matches("<tr class=\"result\">").count(), 20);
        assert!(!last.contains("class=\"next\""));
        let detail = to_windows_1252(&s.detail_html(5).unwrap());
        // '€' is 0x80 and '—' is 0x97 in windows-1252.
        assert!(detail.contains(&0x80) && detail.contains(&0x97));
    }

    #[test]
    fn api_paginates_to_the_end() {
        let s = Site::new(250);
        let mut after = 0;
        let mut seen = 0;
        loop {
            let page = s.api_page(after, 100);
            seen += page["items"].as_array().unwrap().len();
            match page["next_token"].as_str() {
                Some(t) => after = t[1..].parse().unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, 250);
    }
}
