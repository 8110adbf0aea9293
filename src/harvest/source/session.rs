//! `session`: how an `html` or `sitemap` source notices that the site's session ended
//! part-way through a run, and how it gets a new one.
//!
//! JSP-style registries keep a server-side session behind a cookie and, once it expires,
//! answer every page with a redirect to their start page (or a "session expired" page) with
//! status 200. Extracted as if it were the page asked for, that page yields records without
//! their detail fields, which would replace complete stored versions. A page is taken as a
//! lost session when its redirect chain passes through a start URL (or `entry`, or where
//! either of them landed) that was not the URL asked for, or when it matches `lost`.
//!
//! ```toml
//! [session]
//! entry = "https://registry.example/app/start.jsp"   # default: the first start URL
//! lost = "form#login, div.session-expired"            # optional
//! retries = 2                                         # per URL, after a new session
//! ```

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::patterns::CssSelector;
use super::values::HttpUrl;

/// Most retries of one URL with a new session.
pub const MAX_SESSION_RETRIES: u32 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSpec {
    /// The page that starts a session; fetched again (keeping the cookie jar) when the
    /// session is lost. Absent: the first start URL (an `html` source) or none (`sitemap`:
    /// the URL is then retried with the cookies the redirect set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<HttpUrl>,
    /// A page matching this selector is the site saying the session is gone (a login form,
    /// a "session expired" notice), whatever its URL and status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<CssSelector>,
    /// A redirect to a start URL, to `entry`, or to where they landed, from any other URL,
    /// is a lost session. Turn off for a site whose pages legitimately redirect to its
    /// start page (each such page would otherwise fail with `session_lost`).
    pub redirect_to_start: bool,
    /// Renewals that bring no page back (the session they open serves nothing) before a
    /// URL fails with `session_lost` (0 to 10). Renewals that do serve pages, whose session
    /// then ends again because many fetches share it, are not counted against this; they
    /// are bounded at 20 per URL.
    pub retries: u32,
}

impl Default for SessionSpec {
    fn default() -> Self {
        SessionSpec {
            entry: None,
            lost: None,
            redirect_to_start: true,
            retries: 2,
        }
    }
}

impl SessionSpec {
    /// Whether this is the default (then it is left out of a serialized definition, so
    /// definitions stored before sessions existed read back the same).
    pub fn is_default(&self) -> bool {
        *self == SessionSpec::default()
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            self.retries <= MAX_SESSION_RETRIES,
            "retries",
            format!("use 0 to {MAX_SESSION_RETRIES}"),
        );
    }
}
