//! A run's cookie jar (sessions of JSP-style sites), saved with the run.
//!
//! Sites that set a session cookie on their first page and require it afterwards break a
//! resumed run: the pages that set the cookie are already done and are not fetched again.
//! So the jar is saved in the run row whenever a response changes it (before that page's
//! results are committed), and a resumed run starts from the saved jar. Session cookies
//! (no expiry) are saved too; they belong to this run only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cookie_store::CookieStore;
use http::{HeaderMap, HeaderValue};
use url::Url;

/// Most bytes of Set-Cookie headers taken from one response.
const MAX_SET_COOKIE_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct RunJar {
    store: Mutex<CookieStore>,
    dirty: AtomicBool,
}

impl RunJar {
    /// A jar restored from [`RunJar::to_json`]; unreadable JSON gives an empty jar.
    pub fn from_json(s: &str) -> RunJar {
        let store = cookie_store::serde::json::load_all(s.as_bytes()).unwrap_or_default();
        RunJar {
            store: Mutex::new(store),
            dirty: AtomicBool::new(false),
        }
    }

    /// The `Cookie` header for a request to `url`.
    pub fn header(&self, url: &Url) -> Option<HeaderValue> {
        let s = self.store.lock().ok()?;
        let v: Vec<String> = s
            .get_request_values(url)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if v.is_empty() {
            return None;
        }
        HeaderValue::from_str(&v.join("; ")).ok()
    }

    /// Takes the `Set-Cookie` headers of a response from `url`.
    pub fn take(&self, headers: &HeaderMap, url: &Url) {
        let mut budget = MAX_SET_COOKIE_BYTES;
        let Ok(mut s) = self.store.lock() else {
            return;
        };
        for v in headers.get_all(http::header::SET_COOKIE) {
            if v.len() > budget {
                break;
            }
            budget -= v.len();
            if let Ok(text) = v.to_str() {
                if s.parse(text, url).is_ok() {
                    self.dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Whether the jar changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        if let Ok(s) = self.store.lock() {
            let _ = cookie_store::serde::json::save_incl_expired_and_nonpersistent(&s, &mut out);
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_survive_a_save_and_load() {
        let u = Url::parse("http://site.example/registry/list.jsp?page=1").unwrap();
        let jar = RunJar::default();
        let mut h = HeaderMap::new();
        h.append(
            http::header::SET_COOKIE,
            HeaderValue::from_static("JSESSIONID=S1; Path=/registry; HttpOnly"),
        );
        jar.take(&h, &u);
        assert!(jar.take_dirty());
        assert!(!jar.take_dirty());
        let back = RunJar::from_json(&jar.to_json());
        let d = Url::parse("http://site.example/registry/detail.jsp?id=3").unwrap();
        assert_eq!(back.header(&d).unwrap(), "JSESSIONID=S1");
        let other = Url::parse("http://site.example/other").unwrap();
        assert!(back.header(&other).is_none(), "path scoping kept");
    }
}
