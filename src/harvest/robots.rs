//! robots.txt (RFC 9309): what a crawler may fetch and how slowly.
//!
//! Parsing and matching are texting_robots' (longest match wins, allow wins ties, `*` and
//! `$` wildcards, percent-encoding normalised, tested against Google's suite). This module
//! adds what the RFC says about fetch outcomes, a size cap, and a per-agent view to reuse:
//! matching a URL against a parsed view is cheap, parsing is not.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::limits::MAX_ROBOTS_BYTES;

/// Longest crawl delay honoured; longer ones are clamped so one robots.txt cannot park a
/// worker for hours (the scheduler still spaces requests by this much).
pub const MAX_CRAWL_DELAY: Duration = Duration::from_secs(300);

/// A site's robots.txt, as fetched.
#[derive(Debug, Clone)]
pub struct RobotsTxt {
    policy: Policy,
}

#[derive(Debug, Clone)]
enum Policy {
    AllowAll,
    DisallowAll,
    Rules(Arc<[u8]>),
}

/// The rules of one robots.txt for one user agent.
#[derive(Debug)]
pub struct AgentRules {
    policy: AgentPolicy,
}

#[derive(Debug)]
enum AgentPolicy {
    AllowAll,
    DisallowAll,
    Rules(Box<texting_robots::Robot>),
}

impl RobotsTxt {
    /// Parses a robots.txt body. Bodies over [`MAX_ROBOTS_BYTES`] are cut at the last line
    /// break before the cap, as RFC 9309 §2.5 allows.
    pub fn parse(body: &[u8]) -> RobotsTxt {
        let body = if body.len() > MAX_ROBOTS_BYTES {
            let cut = &body[..MAX_ROBOTS_BYTES];
            let end = cut.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            &cut[..end]
        } else {
            body
        };
        RobotsTxt {
            policy: Policy::Rules(body.into()),
        }
    }

    /// What a robots.txt fetch outcome means (RFC 9309 §2.3.1): a 2xx body is parsed;
    /// 4xx ("unavailable") allows everything; 5xx or no answer ("unreachable") disallows
    /// everything until a later fetch succeeds. Redirects are the fetcher's to follow.
    pub fn from_status(status: u16, body: &[u8]) -> RobotsTxt {
        match status {
            200..=299 => RobotsTxt::parse(body),
            400..=499 => RobotsTxt::allow_all(),
            _ => RobotsTxt::disallow_all(),
        }
    }

    pub fn allow_all() -> RobotsTxt {
        RobotsTxt {
            policy: Policy::AllowAll,
        }
    }

    /// For an unreachable robots.txt.
    pub fn disallow_all() -> RobotsTxt {
        RobotsTxt {
            policy: Policy::DisallowAll,
        }
    }

    /// The rules that apply to `user_agent` (the product token, e.g. `GleanerBot`, not the
    /// whole User-Agent header). A robots.txt the parser cannot read at all allows
    /// everything, the RFC's reading of "no usable rules".
    pub fn for_agent(&self, user_agent: &str) -> AgentRules {
        let policy = match &self.policy {
            Policy::AllowAll => AgentPolicy::AllowAll,
            Policy::DisallowAll => AgentPolicy::DisallowAll,
            Policy::Rules(body) => match texting_robots::Robot::new(user_agent, body) {
                Ok(r) => AgentPolicy::Rules(Box::new(r)),
                Err(_) => AgentPolicy::AllowAll,
            },
        };
        AgentRules { policy }
    }

    /// Whether `user_agent` may fetch `url`. Parses per call: hold an [`AgentRules`] when
    /// checking many URLs.
    pub fn allowed(&self, url: &Url, user_agent: &str) -> bool {
        self.for_agent(user_agent).allowed(url)
    }

    /// The crawl delay for `user_agent`, if the file sets one.
    pub fn crawl_delay(&self, user_agent: &str) -> Option<Duration> {
        self.for_agent(user_agent).crawl_delay()
    }
}

impl AgentRules {
    pub fn allowed(&self, url: &Url) -> bool {
        match &self.policy {
            AgentPolicy::AllowAll => true,
            AgentPolicy::DisallowAll => false,
            AgentPolicy::Rules(r) => r.allowed(url.as_str()),
        }
    }

    /// `Crawl-delay`, clamped to [`MAX_CRAWL_DELAY`]; absent, negative or not a number is
    /// `None`.
    pub fn crawl_delay(&self) -> Option<Duration> {
        match &self.policy {
            AgentPolicy::Rules(r) => r
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(MAX_CRAWL_DELAY.as_secs_f32()))),
            _ => None,
        }
    }

    /// `Sitemap:` lines (absolute URLs only).
    pub fn sitemaps(&self) -> Vec<Url> {
        match &self.policy {
            AgentPolicy::Rules(r) => r
                .sitemaps
                .iter()
                .filter_map(|s| Url::parse(s).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TXT: &[u8] = b"User-agent: *\nDisallow: /private/\nAllow: /private/open\nCrawl-delay: 2.5\n\nUser-agent: GleanerBot\nDisallow: /search\nDisallow: /*.pdf$\nCrawl-delay: 99999\n\nSitemap: https://x.example/sitemap.xml\n";

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn rules_per_agent() {
        let r = RobotsTxt::parse(TXT);
        let other = r.for_agent("OtherBot");
        assert!(!other.allowed(&u("https://x.example/private/a")));
        assert!(other.allowed(&u("https://x.example/private/open/1")));
        assert!(other.allowed(&u("https://x.example/search?q=1")));
        assert_eq!(other.crawl_delay(), Some(Duration::from_millis(2500)));

        let us = r.for_agent("GleanerBot");
        assert!(!us.allowed(&u("https://x.example/search?q=1")));
        assert!(!us.allowed(&u("https://x.example/doc/a.pdf")));
        assert!(us.allowed(&u("https://x.example/doc/a.pdf?x=1")));
        assert!(
            us.allowed(&u("https://x.example/private/a")),
            "a specific group replaces *"
        );
        assert_eq!(us.crawl_delay(), Some(MAX_CRAWL_DELAY));
        assert_eq!(us.sitemaps(), vec![u("https://x.example/sitemap.xml")]);
        assert!(r.allowed(&u("https://x.example/robots.txt"), "GleanerBot"));
    }

    #[test]
    fn fetch_outcomes() {
        let page = u("https://x.example/a");
        assert!(RobotsTxt::from_status(404, b"").allowed(&page, "GleanerBot"));
        assert!(!RobotsTxt::from_status(503, b"").allowed(&page, "GleanerBot"));
        assert!(!RobotsTxt::from_status(200, b"User-agent: *\nDisallow: /")
            .allowed(&page, "GleanerBot"));
        assert!(RobotsTxt::from_status(200, b"").allowed(&page, "GleanerBot"));
    }

    #[test]
    fn oversized_files_are_cut_at_a_line() {
        let mut big = b"User-agent: *\nDisallow: /a\n".to_vec();
        while big.len() < MAX_ROBOTS_BYTES + 100 {
            big.extend_from_slice(b"# filler filler filler filler\n");
        }
        big.extend_from_slice(b"Disallow: /b\n");
        let r = RobotsTxt::parse(&big).for_agent("bot");
        assert!(!r.allowed(&u("https://x.example/a")));
        assert!(
            r.allowed(&u("https://x.example/b")),
            "rules past the cap are ignored"
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..400), path in "/[ -~]{0,40}") {
            let r = RobotsTxt::parse(&body).for_agent("GleanerBot");
            if let Ok(url) = Url::parse(&format!("https://x.example{path}")) {
                let _ = r.allowed(&url);
            }
            let _ = r.crawl_delay();
        }
    }
}
