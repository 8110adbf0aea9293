//! The bundled sample site: a registry of competency standards published the way old
//! government sites are — JSP-style paginated listings in windows-1252, detail pages that
//! need the session cookie set by the listing, a sitemap index with gzipped sitemaps, an RSS
//! feed, and a JSON API with `next_token` pagination.
//!
//! It exists so that `gleaner demo` needs no network, so the harvest tests have a realistic
//! site to crawl, and so the harvest benchmark can export the same pages as static files for
//! nginx. Generation is deterministic from the entity count: page N is always the same bytes.

pub mod server;
pub mod site;

pub use server::{export_static, router, CLIENT_ID, CLIENT_SECRET};
pub use site::{to_windows_1252, Entity, Site, UrlStyle, PAGE_SIZE};
