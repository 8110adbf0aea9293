//! Source definitions of the sample site's registry (`/registry/list.jsp`, 50 entries a
//! page, a detail page per entry behind a session cookie), written once for every test
//! that harvests it: as TOML (the runtime, `gleaner harvest --source-file`) and as JSON
//! (the HTTP API).

use std::net::SocketAddr;

use serde_json::{json, Value};

/// The listing only: code and title of every entry, following `a.next`.
pub fn registry_toml(site: SocketAddr) -> String {
    format!(
        r##"
id = "registry"
kind = "html"
start_urls = ["http://{site}/registry/list.jsp?page=1"]
[scope]
max_depth = 0
[next]
selector = "a.next"
[extract]
record = "tr.result"
key = {{ field = "code" }}
[extract.fields.code]
selector = "td.code"
[extract.fields.title]
selector = "td.title"
"##
    )
}

/// [`registry_toml`] with the detail pages: sector and fee (windows-1252's euro sign).
pub fn registry_detail_toml(site: SocketAddr) -> String {
    registry_toml(site)
        + r##"[extract.detail]
link = "td.code a"
[extract.detail.fields.sector]
selector = "#sector"
[extract.detail.fields.fee]
selector = "#fee"
"##
}

/// [`registry_toml`] as the API takes it (the id is in the path).
pub fn registry_json(site: SocketAddr) -> Value {
    json!({
        "kind": "html",
        "start_urls": [format!("http://{site}/registry/list.jsp?page=1")],
        "scope": {"max_depth": 0},
        "next": {"selector": "a.next"},
        "extract": {"record": "tr.result", "key": {"field": "code"},
            "fields": {"code": {"selector": "td.code"}, "title": {"selector": "td.title"}}}
    })
}
