//! The fetch stage of a run: one frontier URL through robots.txt, the request budget, the
//! host's politeness, conditional GET, retries with backoff, a 401's token refresh, and a
//! lost site session's renewal, into a [`Job`] for the CPU pool.
//!
//! The credential is taken after the host's wait (spacing, Retry-After pause), right
//! before the request is sent: a token taken before a long pause can expire during it. A
//! 401 for a token that another request has since replaced is retried with the newer one
//! (a few times at most); a 401 for the current token refreshes it, once per URL.
//!
//! A page that shows the site's session lost (see [`super::session`]) is fetched again
//! after the session is renewed, at most `session.retries` times; then it fails with kind
//! `session_lost`, so its stored record is kept and the run is not complete.
//!
//! robots.txt itself is fetched here too ([`Harvester::robots`]) and cached per host for
//! every run on the node, in the host's politeness state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method};
use rand::Rng;
use url::Url;

use super::counts::bump;
use super::fetch::{retry_after, FetchError, Request};
use super::politeness::{host_key, RobotsState};
use super::process::{Fetched, Job};
use super::run::Run;
use super::session::{Losses, Next};
use super::Harvester;
use crate::harvest::robots::{RobotsTxt, MAX_CRAWL_DELAY};
use crate::store::{FetchState, FrontierEntry};
use crate::telemetry::metrics as m;

/// Most 401 retries per URL with a token someone else already replaced.
const MAX_STALE_401: u32 = 3;

/// Whether a 401 is retried: once per URL after refreshing the token it was sent with
/// (`current`: that token was still the newest), and up to [`MAX_STALE_401`] times when
/// another request had already replaced it (the retry carries the newer one).
fn retry_401(current: bool, refreshed: &mut bool, stale: &mut u32) -> bool {
    if current {
        !std::mem::replace(refreshed, true)
    } else {
        *stale += 1;
        *stale <= MAX_STALE_401
    }
}

fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20).saturating_sub(1));
    exp.min(max).mul_f64(rand::rng().random_range(0.5..1.0))
}

fn job(entry: FrontierEntry, fetched: Fetched, prior: Option<FetchState>) -> Job {
    Job {
        entry,
        fetched,
        prior,
        stored: None,
    }
}

pub(super) async fn fetch_job(run: &Run, entry: FrontierEntry) -> Job {
    let url = match Url::parse(&entry.url) {
        Ok(u) => u,
        Err(e) => {
            let err = FetchError::InvalidUrl {
                url: entry.url.clone(),
                reason: e.to_string(),
            };
            return job(entry, Fetched::Failed(err), None);
        }
    };
    if run.stopping() {
        return job(entry, Fetched::Deferred, None);
    }
    let delay = match robots_delay(run, &url, &entry).await {
        Ok(d) => d,
        Err(fetched) => return job(entry, fetched, None),
    };
    let prior = if run.conditional {
        run.db
            .fetch_state(&run.source, &entry.url)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    attempts(run, entry, &url, delay, prior).await
}

/// The spacing robots.txt asks for between requests to `url`'s host (at least the run's
/// own), or what the URL yields without a request: blocked, or robots.txt unreachable.
async fn robots_delay(run: &Run, url: &Url, entry: &FrontierEntry) -> Result<Duration, Fetched> {
    let mut delay = run.min_delay;
    if run.obey_robots {
        let rules = match run.h.robots(url).await {
            RobotsState::Rules(r) => r,
            RobotsState::Unreachable(reason) => {
                // A failure, not a block: the run is not complete, so nothing of this host
                // is marked removed, and the URL is tried again by a later run.
                let err = FetchError::RobotsUnreachable {
                    url: entry.url.clone(),
                    reason,
                };
                metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "error").increment(1);
                return Err(Fetched::Failed(err));
            }
        };
        if !rules.allowed(url) {
            bump(&run.counters.robots_blocked, 1);
            metrics::counter!(m::HARVEST_ROBOTS_BLOCKED_TOTAL).increment(1);
            metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "robots_blocked").increment(1);
            return Err(Fetched::RobotsBlocked);
        }
        if let Some(d) = rules.crawl_delay() {
            delay = delay.max(d.min(MAX_CRAWL_DELAY));
        }
    }
    Ok(delay)
}

/// Asks for the body only if it changed since `prior` was stored.
fn add_conditional(headers: &mut http::HeaderMap, prior: &FetchState) {
    if let Some(v) = prior
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(http::header::IF_NONE_MATCH, v);
    }
    if let Some(v) = prior
        .last_modified
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(http::header::IF_MODIFIED_SINCE, v);
    }
}

/// The requests for one URL: retries with backoff, a 401's token refresh and a lost
/// session's renewal, until a response (or the last failure) decides the [`Job`].
async fn attempts(
    run: &Run,
    entry: FrontierEntry,
    url: &Url,
    delay: Duration,
    prior: Option<FetchState>,
) -> Job {
    let h = &run.h;
    let key = host_key(url);
    let base = Duration::from_millis(h.cfg.retry_base_ms);
    let max = Duration::from_millis(h.cfg.retry_max_ms);
    let mut attempt = 0u32;
    let mut retried_401 = false;
    let mut stale_401 = 0u32;
    let mut losses = Losses::default();
    loop {
        attempt += 1;
        let generation = run.session.as_ref().map_or(0, |s| s.generation());
        if let Some(s) = &run.session {
            losses.sending(s);
        }
        if run.budget.take().await.is_err() {
            run.budget_hit.store(true, Ordering::Relaxed);
            return job(entry, Fetched::Deferred, prior);
        }
        let mut headers = http::HeaderMap::new();
        if let Some(p) = &prior {
            add_conditional(&mut headers, p);
        }
        let r = send_get(run, &key, url, headers, delay).await;
        if let Err(e @ FetchError::Auth { .. }) = r {
            return job(entry, Fetched::Failed(e), prior);
        }
        let (err, pause) = match r {
            Ok((resp, used)) => {
                let st = resp.status.as_u16();
                bump(&run.counters.bytes, resp.body.len() as u64);
                metrics::counter!(m::HARVEST_BYTES_TOTAL).increment(resp.body.len() as u64);
                if st == 304 && prior.is_some() {
                    if let Some(s) = &run.session {
                        s.served(generation);
                    }
                    h.hosts.feedback(&key, true);
                    bump(&run.counters.not_modified, 1);
                    metrics::counter!(m::HARVEST_NOT_MODIFIED_TOTAL).increment(1);
                    metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "not_modified")
                        .increment(1);
                    return job(entry, Fetched::NotModified, prior);
                }
                if resp.status.is_success() {
                    if let Some((s, why)) = match &run.session {
                        Some(s) => s
                            .lost(&h.cpu, &entry.kind, url, &resp)
                            .await
                            .map(|w| (s, w)),
                        None => None,
                    } {
                        if s.on_loss(generation, &mut losses) == Next::Renew && !run.stopping() {
                            tracing::debug!(source = %run.source, url = %entry.url, reason = %why, "the site's session was lost; renewing it");
                            renew_session(run, generation, delay).await;
                            // Not a transient failure: the normal attempts stay for those.
                            attempt -= 1;
                            bump(&run.counters.retries, 1);
                            metrics::counter!(m::HARVEST_RETRIES_TOTAL).increment(1);
                            continue;
                        }
                        metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "error")
                            .increment(1);
                        let err = FetchError::SessionLost {
                            url: entry.url.clone(),
                            reason: why,
                            renewals: losses.total - 1,
                        };
                        return job(entry, Fetched::Failed(err), prior);
                    }
                    if let Some(s) = &run.session {
                        s.served(generation);
                    }
                    h.hosts.feedback(&key, true);
                    bump(&run.counters.fetched, 1);
                    metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "ok").increment(1);
                    return job(entry, Fetched::Body(Box::new(resp)), prior);
                }
                if st == 401 {
                    if let Some(tok) = &used {
                        let current = run.auth.invalidate(tok).await;
                        if retry_401(current, &mut retried_401, &mut stale_401) {
                            attempt -= 1;
                            bump(&run.counters.retries, 1);
                            metrics::counter!(m::HARVEST_RETRIES_TOTAL).increment(1);
                            continue;
                        }
                    }
                }
                let pause = if st == 429 || st == 503 {
                    retry_after(&resp.headers).map(|d| d.min(max))
                } else {
                    None
                };
                (
                    FetchError::Status {
                        url: entry.url.clone(),
                        status: st,
                    },
                    pause,
                )
            }
            Err(e) => (e, None),
        };
        if err.retryable() {
            h.hosts.feedback(&key, false);
        }
        if let Some(p) = pause {
            h.hosts.pause(&key, p);
        }
        if err.retryable() && attempt < h.cfg.max_attempts && !run.stopping() {
            bump(&run.counters.retries, 1);
            metrics::counter!(m::HARVEST_RETRIES_TOTAL).increment(1);
            if pause.is_none() {
                tokio::time::sleep(backoff(base, max, attempt)).await;
            }
            continue;
        }
        metrics::counter!(m::HARVEST_FETCHES_TOTAL, "outcome" => "error").increment(1);
        return job(entry, Fetched::Failed(err), prior);
    }
}

/// Fetches the session's entry page into the run's jar (once for every fetch that saw the
/// session lost in `generation`). A failure is logged, not returned: the page that saw the
/// loss is fetched again either way and fails with `session_lost` once its retries are spent.
async fn renew_session(run: &Run, generation: u64, delay: Duration) {
    let Some(session) = &run.session else {
        return;
    };
    let renewed = session
        .renew(generation, || async {
            let Some(entry) = session.entry().cloned() else {
                // Nothing to fetch (a sitemap source without `session.entry`): the retry
                // goes out with the cookies the redirect set.
                return Ok(());
            };
            if run.budget.take().await.is_err() {
                run.budget_hit.store(true, Ordering::Relaxed);
                return Err("the requests_per_day budget is spent".to_owned());
            }
            let headers = http::HeaderMap::new();
            match send_get(run, &host_key(&entry), &entry, headers, delay).await {
                Ok((resp, _)) if resp.status.is_success() => {
                    session.landed(&resp);
                    Ok(())
                }
                Ok((resp, _)) => Err(format!("{entry}: HTTP {}", resp.status.as_u16())),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
    match renewed {
        Ok(true) => {
            bump(&run.counters.session_renewals, 1);
            metrics::counter!(m::HARVEST_SESSION_RENEWALS_TOTAL).increment(1);
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(source = %run.source, error = %e, "renewing the site's session failed")
        }
    }
}

/// One GET of the run within its host's politeness, with the run's credentials (taken
/// after the wait; the access token used comes back for a 401) and cookie jar (saved when
/// the response changed it). A credential that cannot be had is `FetchError::Auth`.
async fn send_get(
    run: &Run,
    host: &str,
    url: &Url,
    mut headers: http::HeaderMap,
    delay: Duration,
) -> Result<(super::fetch::Response, Option<String>), FetchError> {
    let permit = run.h.hosts.acquire(host, delay, run.host_limit).await;
    metrics::histogram!(m::HARVEST_HOST_WAIT_SECONDS).record(permit.waited.as_secs_f64());
    let (auth, used) = run
        .auth
        .headers(&run.h.fetcher)
        .await
        .map_err(|e| FetchError::Auth {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    headers.extend(auth);
    bump(&run.counters.requests, 1);
    let r = run
        .h
        .fetcher
        .send(Request {
            method: Method::GET,
            url: url.clone(),
            headers,
            form: None,
            jar: Some(&run.jar),
            credentials: run.auth.has_credentials(),
        })
        .await;
    drop(permit);
    run.save_jar().await;
    r.map(|resp| (resp, used))
}

impl Harvester {
    /// robots.txt rules of `url`'s host for our agent, cached per host. An unreachable
    /// robots.txt (5xx, or no answer at all) disallows the whole host (RFC 9309 §2.3.1.3-4)
    /// and is asked again after a minute; a 4xx allows everything.
    pub(super) async fn robots(&self, url: &Url) -> RobotsState {
        let key = host_key(url);
        let host = self.hosts.host(&key);
        let mut slot = host.robots.lock().await;
        if let Some((r, exp)) = slot.as_ref() {
            if Instant::now() < *exp {
                return r.clone();
            }
        }
        let ttl = Duration::from_secs(self.cfg.robots_ttl_secs);
        let short = Duration::from_secs(60);
        let token = self
            .cfg
            .user_agent
            .split('/')
            .next()
            .unwrap_or("GleanerBot");
        let (state, ttl) = match url.join("/robots.txt") {
            Ok(ru) => match self.fetcher.send(Request::get(ru)).await {
                Ok(r) if r.status.as_u16() >= 500 => (
                    RobotsState::Unreachable(format!("HTTP {}", r.status.as_u16())),
                    short,
                ),
                Ok(r) => (
                    RobotsState::Rules(Arc::new(
                        RobotsTxt::from_status(r.status.as_u16(), &r.body).for_agent(token),
                    )),
                    ttl,
                ),
                // A blocked address: the page's own fetch reports the block. Redirect
                // trouble: "unavailable" (RFC 9309 §2.3.1.2), as a 4xx.
                Err(
                    FetchError::Blocked { .. }
                    | FetchError::RedirectLoop { .. }
                    | FetchError::TooManyRedirects { .. }
                    | FetchError::BadRedirect { .. },
                ) => (
                    RobotsState::Rules(Arc::new(RobotsTxt::allow_all().for_agent(token))),
                    short,
                ),
                Err(e) => (RobotsState::Unreachable(e.label().replace('_', " ")), short),
            },
            // A URL without a host has no robots.txt; the fetch reports the URL itself.
            Err(_) => (
                RobotsState::Rules(Arc::new(RobotsTxt::allow_all().for_agent(token))),
                ttl,
            ),
        };
        *slot = Some((state.clone(), Instant::now() + ttl));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_401_refreshes_once_and_a_replaced_token_retries_a_few_times() {
        let (mut refreshed, mut stale) = (false, 0);
        // Replaced tokens do not spend the one refresh retry.
        for _ in 0..MAX_STALE_401 {
            assert!(retry_401(false, &mut refreshed, &mut stale));
        }
        assert!(retry_401(true, &mut refreshed, &mut stale));
        assert!(
            !retry_401(true, &mut refreshed, &mut stale),
            "a fresh token refused"
        );
        assert!(!retry_401(false, &mut refreshed, &mut stale), "bounded");
    }
}
