//! The extractors: fetched bytes in, records and links out. One module per source kind.

pub mod csv;
pub mod feed;
pub mod html;
pub mod json;
pub mod push;
pub mod sitemap;
pub mod xml;
