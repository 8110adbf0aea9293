//! A run's view of the site's session: telling a page that shows the session lost from the
//! page asked for, and renewing the session once for every fetch that saw it lost.
//!
//! The signals (see [`crate::harvest::source::SessionSpec`]): the redirect chain of a page
//! that is not itself a start URL passes through a start URL, the `entry` URL, or a URL
//! that fetching one of those landed on (a start URL that redirects to the real listing);
//! or the page matches the source's `lost` selector. Matching the selector parses the page,
//! so it runs on the CPU pool, and only for sources that configure it.
//!
//! Renewal is single-flight by generation: a fetch remembers the generation it was sent
//! in; when it sees a lost session it renews only if no other fetch renewed since, so the
//! eight detail pages in flight when a session expires cost one entry fetch, not eight.
//!
//! A URL gives up after `retries` renewals that brought no page back: when the session it
//! was sent with served no page at all, and no page at all came back whole since the URL's
//! previous loss, renewing does not work. Otherwise the loss is contention (a site whose
//! sessions end after a few pages, shared by many fetches in flight) and the URL tries
//! again, up to [`MAX_SESSION_ATTEMPTS`] times. The second test is what makes the first
//! safe: the pages a session did serve may come back after a page it refused (they race
//! on the wire and the runtime), so "served nothing yet" alone misjudged working sessions
//! under load; a late winner is seen by the next loss's interval.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use url::Url;

use super::fetch::Response;
use super::process::{DETAIL, LISTING, PAGE};
use crate::cpu::CpuPool;
use crate::harvest::extract::html::page_matches;
use crate::harvest::source::{CssSelector, SessionSpec, SourceSpec};

/// Most URLs remembered as start pages (start URLs, entry, where they landed).
const MAX_START_PAGES: usize = 512;
/// Most times one URL is sent again after a lost session, however well renewals work.
pub const MAX_SESSION_ATTEMPTS: u32 = 20;

pub struct Session {
    spec: SessionSpec,
    /// `spec.lost`, shared with each page's CPU-pool job rather than cloned per page.
    lost: Option<Arc<CssSelector>>,
    entry: Option<Url>,
    /// Normalised start pages; a redirect to one of them is a lost session.
    starts: Mutex<HashSet<String>>,
    generation: AtomicU64,
    /// The newest generation in which a page came back whole (not showing a lost session),
    /// plus one; 0 while none has.
    served: AtomicU64,
    /// Pages that came back whole in this run, in any generation.
    pages: AtomicU64,
    renewing: tokio::sync::Mutex<()>,
}

/// What a fetch does after its page showed the session lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Renew,
    GiveUp,
}

/// One URL's tally of lost sessions.
#[derive(Debug, Default, Clone, Copy)]
pub struct Losses {
    /// Times the URL's page showed the session lost.
    pub total: u32,
    /// Of those, times the session it was sent with had served no page and no page came
    /// back whole since the previous loss (or the first send).
    pub fruitless: u32,
    /// Pages served in the run ([`Session::pages_served`]) at the first send, then at each
    /// loss.
    mark: Option<u64>,
}

impl Losses {
    /// Called before each send: the first one sets where progress is counted from.
    pub fn sending(&mut self, session: &Session) {
        self.mark.get_or_insert_with(|| session.pages_served());
    }
}

/// `u` as compared against start pages: no fragment, no `;jsessionid=` path parameter
/// (JSP sites put the session in the path, so the same page differs per session).
fn norm(u: &Url) -> String {
    let mut u = crate::harvest::urls::without_fragment(u.clone());
    let path = u.path();
    if let Some(at) = path.to_ascii_lowercase().find(";jsessionid=") {
        let rest = &path[at + 1..];
        let end = rest.find(['/', ';']).map_or(path.len(), |i| at + 1 + i);
        let cleaned = format!("{}{}", &path[..at], &path[end..]);
        u.set_path(&cleaned);
    }
    u.to_string()
}

impl Session {
    /// The session view of a source whose pages are HTML (`html`, `sitemap`); `None` for
    /// the other kinds.
    pub fn for_source(spec: &SourceSpec) -> Option<Session> {
        let (session, starts, default_entry): (&SessionSpec, Vec<&Url>, Option<&Url>) = match spec {
            SourceSpec::Html(s) => (
                &s.session,
                s.start_urls.iter().map(|u| u.url()).collect(),
                s.start_urls.first().map(|u| u.url()),
            ),
            SourceSpec::Sitemap(s) => (
                &s.session,
                s.sitemaps.iter().map(|u| u.url()).collect(),
                None,
            ),
            _ => return None,
        };
        let entry = session
            .entry
            .as_ref()
            .map(|u| u.url())
            .or(default_entry)
            .cloned();
        let mut set: HashSet<String> = starts.into_iter().map(norm).collect();
        if let Some(e) = &entry {
            set.insert(norm(e));
        }
        Some(Session {
            lost: session.lost.clone().map(Arc::new),
            spec: session.clone(),
            entry,
            starts: Mutex::new(set),
            generation: AtomicU64::new(0),
            served: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A page sent in `generation` came back whole.
    pub fn served(&self, generation: u64) {
        self.served.fetch_max(generation + 1, Ordering::AcqRel);
        self.pages.fetch_add(1, Ordering::AcqRel);
    }

    /// Pages that came back whole in this run so far.
    pub fn pages_served(&self) -> u64 {
        self.pages.load(Ordering::Acquire)
    }

    /// Counts a lost session of a page sent in `generation` and says whether to renew
    /// and send it again or to give up.
    pub fn on_loss(&self, generation: u64, losses: &mut Losses) -> Next {
        losses.total += 1;
        let pages = self.pages_served();
        let progressed = losses.mark.is_some_and(|m| pages > m);
        losses.mark = Some(pages);
        if self.served.load(Ordering::Acquire) <= generation && !progressed {
            losses.fruitless += 1;
        }
        if losses.fruitless > self.spec.retries || losses.total > MAX_SESSION_ATTEMPTS {
            Next::GiveUp
        } else {
            Next::Renew
        }
    }

    /// The page fetched to renew the session, when there is one.
    pub fn entry(&self) -> Option<&Url> {
        self.entry.as_ref()
    }

    fn is_start(&self, u: &Url) -> bool {
        self.starts
            .lock()
            .map(|s| s.contains(&norm(u)))
            .unwrap_or(false)
    }

    /// Remembers where fetching a start page (or the entry) landed, so a later redirect
    /// there also reads as a lost session.
    pub fn landed(&self, resp: &Response) {
        if let Ok(mut s) = self.starts.lock() {
            for u in resp.redirected_from.iter().chain([&resp.url]) {
                if s.len() < MAX_START_PAGES {
                    s.insert(norm(u));
                }
            }
        }
    }

    /// Why `resp`, fetched for `requested` (a frontier entry of `kind`), is the site's
    /// answer for a lost session rather than the page asked for; `None` when it is the page.
    pub async fn lost(
        &self,
        cpu: &CpuPool,
        kind: &str,
        requested: &Url,
        resp: &Response,
    ) -> Option<String> {
        if !matches!(kind, LISTING | DETAIL | PAGE) {
            return None;
        }
        if self.is_start(requested) {
            // A start page may redirect anywhere; where it lands is a start page too.
            self.landed(resp);
        } else if self.spec.redirect_to_start && !resp.redirected_from.is_empty() {
            let hops = resp.redirected_from.iter().skip(1).chain([&resp.url]);
            if let Some(to) = hops.into_iter().find(|u| self.is_start(u)) {
                return Some(format!("redirected to the start page {to}"));
            }
        }
        let sel = Arc::clone(self.lost.as_ref()?);
        let job = Arc::clone(&sel);
        let body = resp.body.clone();
        let ct = resp.header("content-type").map(str::to_owned);
        let matched = cpu
            .run(move || {
                let text = crate::harvest::charset::decode_html(&body, ct.as_deref()).text;
                page_matches(&text, &job)
            })
            .await
            // The pool is gone only when the process stops; the run stops with it.
            .unwrap_or(false);
        matched.then(|| format!("the page matches session.lost {:?}", sel.as_str()))
    }

    /// Renews the session with `renew` (which fetches the entry page into the run's jar),
    /// unless another fetch renewed it since generation `seen`. Returns whether this call
    /// renewed it.
    pub async fn renew<F, Fut, E>(&self, seen: u64, renew: F) -> Result<bool, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let _one = self.renewing.lock().await;
        if self.generation() != seen {
            return Ok(false);
        }
        let r = renew().await;
        // Counted even when it failed: the fetches waiting on this renewal retry with
        // whatever the jar now holds instead of each fetching the entry page again.
        self.generation.fetch_add(1, Ordering::AcqRel);
        r.map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::SourceDef;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn session(extra: &str) -> Session {
        let toml = format!(
            r#"
id = "reg"
kind = "html"
start_urls = ["http://reg.example/app/start.jsp"]
[extract]
record = "tr"
key = {{ field = "code" }}
fields.code = {{ selector = "td" }}
{extra}
"#
        );
        Session::for_source(&SourceDef::parse_toml(&toml).unwrap().spec).unwrap()
    }

    fn resp(chain: &[&str], body: &str) -> Response {
        let (last, before) = chain.split_last().unwrap();
        Response {
            status: StatusCode::OK,
            url: u(last),
            redirected_from: before.iter().map(|s| u(s)).collect(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    fn cpu() -> CpuPool {
        CpuPool::new(&Default::default()).unwrap()
    }

    #[tokio::test]
    async fn a_redirect_to_a_start_page_or_where_it_landed_is_a_lost_session() {
        let s = session("");
        let cpu = cpu();
        let detail = u("http://reg.example/app/detail.jsp?id=7");
        // The start URL itself redirecting is fine, and where it lands becomes a start page.
        let start = u("http://reg.example/app/start.jsp");
        let landed = resp(
            &[
                "http://reg.example/app/start.jsp",
                "http://reg.example/app/list.jsp;jsessionid=AB12?page=1",
            ],
            "",
        );
        assert_eq!(s.lost(&cpu, LISTING, &start, &landed).await, None);
        // A detail page sent to the start page, directly or through the landing page
        // with another session id in its path.
        let to_start = resp(&[detail.as_str(), "http://reg.example/app/start.jsp"], "");
        let why = s.lost(&cpu, DETAIL, &detail, &to_start).await.unwrap();
        assert!(why.contains("start.jsp"), "{why}");
        let to_landing = resp(
            &[
                detail.as_str(),
                "http://reg.example/app/list.jsp;JSESSIONID=ZZ99?page=1",
            ],
            "",
        );
        assert!(s.lost(&cpu, DETAIL, &detail, &to_landing).await.is_some());
        // Other redirects and plain answers are the page.
        let moved = resp(
            &[
                detail.as_str(),
                "http://reg.example/app/detail.jsp?id=7&v=2",
            ],
            "",
        );
        assert_eq!(s.lost(&cpu, DETAIL, &detail, &moved).await, None);
        assert_eq!(
            s.lost(&cpu, DETAIL, &detail, &resp(&[detail.as_str()], ""))
                .await,
            None
        );
        // Sitemaps, feeds and APIs are not pages a session guards.
        assert_eq!(s.lost(&cpu, "sitemap", &detail, &to_start).await, None);
    }

    #[tokio::test]
    async fn the_lost_selector_and_the_redirect_switch() {
        let s = session(
            "[session]\nlost = \"form#login\"\nredirect_to_start = false\nretries = 3\nentry = \"http://reg.example/app/hub.jsp\"",
        );
        let cpu = cpu();
        assert_eq!(s.spec.retries, 3);
        assert_eq!(
            s.entry().unwrap().as_str(),
            "http://reg.example/app/hub.jsp"
        );
        let detail = u("http://reg.example/app/detail.jsp?id=7");
        let login = resp(
            &[detail.as_str()],
            "<html><body><form id=login><input name=u></form></body></html>",
        );
        let why = s.lost(&cpu, DETAIL, &detail, &login).await.unwrap();
        assert!(why.contains("form#login"), "{why}");
        let page = resp(
            &[detail.as_str()],
            "<html><body><dl><dd>7</dd></dl></body></html>",
        );
        assert_eq!(s.lost(&cpu, DETAIL, &detail, &page).await, None);
        let to_start = resp(
            &[detail.as_str(), "http://reg.example/app/start.jsp"],
            "<p>hub</p>",
        );
        assert_eq!(s.lost(&cpu, DETAIL, &detail, &to_start).await, None);
    }

    #[tokio::test]
    async fn fetches_that_saw_one_loss_renew_once() {
        let s = session("");
        let g = s.generation();
        let mut calls = 0;
        assert!(s
            .renew(g, || {
                calls += 1;
                async { Ok::<(), ()>(()) }
            })
            .await
            .unwrap());
        // A second fetch that was sent in the same generation finds it renewed already.
        assert!(!s
            .renew(g, || {
                calls += 1;
                async { Ok::<(), ()>(()) }
            })
            .await
            .unwrap());
        assert_eq!(calls, 1);
        // A failed renewal still moves the generation on, and reports its error.
        let g = s.generation();
        assert_eq!(
            s.renew(g, || async { Err::<(), _>("down") }).await,
            Err("down")
        );
        assert_eq!(s.generation(), g + 1);
    }

    #[test]
    fn a_url_gives_up_only_when_renewals_bring_nothing_back() {
        // Renewals that serve pages (contention) do not count against `retries` (2).
        let s = session("");
        let mut l = Losses::default();
        for g in 0..10 {
            s.served(g);
            assert_eq!(s.on_loss(g, &mut l), Next::Renew, "{g}");
        }
        assert_eq!(l.fruitless, 0);
        // Three in a row that served nothing: give up.
        assert_eq!(s.on_loss(10, &mut l), Next::Renew);
        assert_eq!(s.on_loss(11, &mut l), Next::Renew);
        assert_eq!(s.on_loss(12, &mut l), Next::GiveUp);
        assert_eq!((l.total, l.fruitless), (13, 3));
        // A page served in another generation since the previous loss is progress too: the
        // pages a session served may come back after the page it refused.
        let mut l = Losses::default();
        l.sending(&s);
        for g in 200..210 {
            assert_eq!(s.on_loss(g, &mut l), Next::Renew, "{g}");
            s.served(g - 1);
        }
        assert_eq!(
            l.fruitless, 1,
            "only the first loss, before any page came back"
        );
        // However well renewals work, one URL is sent at most MAX_SESSION_ATTEMPTS times.
        let mut l = Losses::default();
        let mut tries = 0;
        while s.on_loss(100, &mut l) == Next::Renew {
            s.served(100);
            tries += 1;
        }
        assert_eq!(tries, MAX_SESSION_ATTEMPTS);
    }

    #[test]
    fn session_ids_in_the_path_do_not_make_pages_differ() {
        assert_eq!(
            norm(&u("http://a.example/x/list.jsp;jsessionid=1A2B?p=1#top")),
            "http://a.example/x/list.jsp?p=1"
        );
        assert_eq!(
            norm(&u("http://a.example/x;jsessionid=1A2B/list.jsp")),
            "http://a.example/x/list.jsp"
        );
    }
}
