//! Small validated values used across source definitions: ids, durations, URLs, secrets.
//!
//! Each parses from a string once, at deserialization, with a message that says what a good
//! value looks like; serde_path_to_error then prefixes the field's path. Each serializes
//! back to text that parses to the same value.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::tenant::MAX_LEN as MAX_ID_LEN;

/// Implements Display, Serialize (as the text form) and Deserialize (through `parse`) for a
/// type with `fn parse(&str) -> Result<Self, String>` and `fn as_text(&self) -> String`-like
/// `Display`.
macro_rules! string_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$ty>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_serde;

/// A source id: the same alphabet as tenant ids (a-z, 0-9, '-', 1–63 characters, no
/// leading '-'), so ids are safe in paths, metric labels and file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(String);

impl SourceId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars == 0 || chars > MAX_ID_LEN {
            return Err(format!(
                "source id {s:?} must be 1 to {MAX_ID_LEN} characters long"
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(format!(
                "source id {s:?} contains {c:?}; use lowercase letters a-z, digits 0-9 and '-'"
            ));
        }
        if s.starts_with('-') {
            return Err(format!("source id {s:?} must not start with '-'"));
        }
        Ok(SourceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(SourceId);

/// A duration written with units, e.g. `250ms`, `90s`, `15m`, `6h`, `400d`, `2w`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// Longest duration accepted anywhere: a hundred years (fields bound themselves further
/// where they must).
const MAX_DURATION_MS: u64 = 100 * 366 * 86_400_000;
/// The units, largest first, in milliseconds.
const UNITS: [(&str, u64); 6] = [
    ("w", 604_800_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

impl HumanDuration {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hint =
            "use whole numbers with a unit ms, s, m, h, d or w, e.g. 250ms, 90s, 15m, 1h30m, 400d";
        let t = s.trim();
        if t.is_empty() {
            return Err(format!("empty duration; {hint}"));
        }
        let too_long = || format!("duration {s:?} is too long; {hint}");
        let mut total: u64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(format!("invalid duration {s:?}; {hint}"));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
            rest = &rest[digits..];
            let letters = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .len();
            let unit = &rest[..letters];
            rest = &rest[letters..];
            if unit.is_empty() && rest.is_empty() {
                return Err(format!(
                    "duration {s:?} has a number without a unit; {hint}"
                ));
            }
            if unit.is_empty() {
                return Err(format!("invalid duration {s:?}; {hint}"));
            }
            let Some((_, ms)) = UNITS.iter().find(|(u, _)| *u == unit) else {
                return Err(format!("unknown unit {unit:?} in duration {s:?}; {hint}"));
            };
            total = n
                .checked_mul(*ms)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(too_long)?;
        }
        if total > MAX_DURATION_MS {
            return Err(format!("duration {s:?} is longer than a hundred years"));
        }
        Ok(HumanDuration(Duration::from_millis(total)))
    }

    /// Whole seconds (sub-second values round down).
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// The unit this duration is written in: the largest that divides it exactly, so a
    /// value the user wrote in one unit (`400d`, `250ms`) reads back in that unit. Weeks
    /// are read but never written (`7d` stays `7d`; `2w` reads back as `14d`).
    fn unit(self) -> (&'static str, u64) {
        let ms = self.0.as_millis();
        UNITS[1..]
            .iter()
            .copied()
            .find(|(_, u)| ms.is_multiple_of(u128::from(*u)))
            .unwrap_or(("ms", 1))
    }

    /// `bound` written in this duration's unit when it is a whole number of them
    /// (`366d` next to a user's `400d`), else in its own: for range errors in the units
    /// the user wrote.
    pub fn in_unit_of(self, bound: Duration) -> String {
        let (name, u) = self.unit();
        let ms = bound.as_millis();
        if ms.is_multiple_of(u128::from(u)) {
            format!("{}{name}", ms / u128::from(u))
        } else {
            HumanDuration(bound).to_string()
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (name, u) = self.unit();
        write!(f, "{}{name}", ms / u128::from(u))
    }
}
string_serde!(HumanDuration);

/// An absolute http or https URL without credentials (credentials belong in `auth`, where
/// they are referenced instead of written into a URL that ends up in logs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(pub Url);

impl HttpUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        let u = Url::parse(s.trim()).map_err(|e| format!("invalid URL {s:?}: {e}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!("URL {s:?} must use http or https"));
        }
        if u.host_str().is_none_or(str::is_empty) {
            return Err(format!("URL {s:?} has no host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(format!(
                "URL {s:?} contains credentials; put them in `auth` as secret references"
            ));
        }
        if s.len() > crate::harvest::limits::MAX_URL_BYTES {
            return Err(format!(
                "URL is longer than {} bytes",
                crate::harvest::limits::MAX_URL_BYTES
            ));
        }
        Ok(HttpUrl(super::super::urls::without_fragment(u)))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}
string_serde!(HttpUrl);

/// Where a secret comes from. Secrets are referenced, never written into a definition:
/// `secret:NAME` is an entry in the tenant's secret store, `env:NAME` an environment
/// variable of the Gleaner process, `file:/path` a file on the node (Kubernetes secrets,
/// systemd credentials). The last two reach into the operator's machine, so definitions
/// that arrive over the tenant API may only use `secret:` (see
/// [`super::SourceDef::validate_untrusted`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    Store(String),
    Env(String),
    File(std::path::PathBuf),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hint = "use secret:NAME (tenant secret store), env:NAME or file:/absolute/path";
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not a secret reference; {hint}"))?;
        match scheme {
            "secret" => {
                let ok = !rest.is_empty()
                    && rest.len() <= 128
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(format!(
                        "secret name {rest:?} must be 1-128 characters from A-Z, a-z, 0-9, '-', '_', '.'"
                    ));
                }
                Ok(SecretRef::Store(rest.to_owned()))
            }
            "env" => {
                let ok = !rest.is_empty()
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !rest.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    return Err(format!("{rest:?} is not an environment variable name"));
                }
                Ok(SecretRef::Env(rest.to_owned()))
            }
            "file" => {
                let p = std::path::Path::new(rest);
                let ok = p.is_absolute()
                    && !p
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                if !ok {
                    return Err(format!("{rest:?} must be an absolute path without '..'"));
                }
                Ok(SecretRef::File(p.to_owned()))
            }
            _ => Err(format!("unknown secret scheme {scheme:?}; {hint}")),
        }
    }

    /// Whether resolving this reference reads the node's environment or files.
    pub fn is_node_local(&self) -> bool {
        !matches!(self, SecretRef::Store(_))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Store(n) => write!(f, "secret:{n}"),
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}
string_serde!(SecretRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        let d = |s| HumanDuration::parse(s).unwrap().0.as_secs();
        assert_eq!(d("90s"), 90);
        assert_eq!(d("15m"), 900);
        assert_eq!(d("1h30m"), 5400);
        assert_eq!(d("2d"), 172_800);
        assert_eq!(d("1w"), 604_800);
        assert_eq!(d("400d"), 400 * 86_400);
        let ms = |s| HumanDuration::parse(s).unwrap().0.as_millis();
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("1s500ms"), 1500);
        // Printed in the largest unit that divides the value, so it reads back as written.
        for (written, printed) in [
            ("5400s", "90m"),
            ("400d", "400d"),
            ("7d", "7d"),
            ("2w", "14d"),
            ("250ms", "250ms"),
            ("1h30m", "90m"),
        ] {
            let h = HumanDuration::parse(written).unwrap();
            assert_eq!(h.to_string(), printed);
            assert_eq!(HumanDuration::parse(printed).unwrap(), h);
        }
        let d400 = HumanDuration::parse("400d").unwrap();
        assert_eq!(d400.in_unit_of(Duration::from_secs(366 * 86_400)), "366d");
        let ms250 = HumanDuration::parse("250ms").unwrap();
        assert_eq!(ms250.in_unit_of(Duration::from_secs(3600)), "3600000ms");
        for bad in [
            "",
            "15",
            "m",
            "15x",
            "1.5h",
            "-1m",
            "99999999999999999999s",
            "40000d",
            "5x",
            "1mss",
            "2 d",
        ] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_follow_the_tenant_alphabet() {
        assert!(SourceId::parse("registry-2").is_ok());
        for bad in ["", "Reg", "a_b", "-a", "a/b", &"x".repeat(64)] {
            assert!(SourceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_http_without_credentials() {
        assert_eq!(
            HttpUrl::parse("https://EXAMPLE.org:443/a/../b#frag")
                .unwrap()
                .to_string(),
            "https://example.org/b"
        );
        for bad in [
            "ftp://x.org/",
            "https://u:p@x.org/",
            "/relative",
            "mailto:a@b.c",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_refs() {
        assert_eq!(
            SecretRef::parse("secret:api-key").unwrap(),
            SecretRef::Store("api-key".into())
        );
        assert!(SecretRef::parse("env:API_KEY").unwrap().is_node_local());
        assert!(SecretRef::parse("file:/run/secrets/k").is_ok());
        for bad in [
            "hunter2",
            "file:rel/path",
            "file:/a/../etc/shadow",
            "env:1X",
            "vault:x",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(SecretRef::parse("env:K").unwrap().to_string(), "env:K");
    }
}
