//! How a push source checks who sent a webhook (`signature`) and which events fetch a
//! record into another source (`events`).
//!
//! A `signature` names a provider `preset` or spells the scheme out key by key; keys given
//! next to a preset override it. [`SignatureSpec::scheme`] merges the two into the one
//! [`Scheme`] the verifier reads, so the verifier never looks at presets and validation
//! checks exactly what will run.

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::patterns::JsonPathExpr;
use super::values::{HumanDuration, SecretRef, SourceId};

/// Most event mappings on one push source.
pub const MAX_EVENTS: usize = 32;
/// Most replay entries kept for one source.
pub const MAX_REPLAY_CAPACITY: u32 = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    pub secret: SecretRef,
    /// A provider's scheme: `gleaner` (the default), `whoop`, `stripe`, `github`, `slack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The header holding the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The header holding the timestamp (not with `header_format: stripe` or `signed: body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// How the signature header is laid out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_format: Option<HeaderFormat>,
    /// What the HMAC-SHA256 is computed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Signed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Removed from each signature when present, e.g. `sha256=` or `v0=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_unit: Option<TimeUnit>,
    /// How far the timestamp may be from the receiver's clock, either way.
    #[serde(default = "default_tolerance")]
    pub tolerance: HumanDuration,
    /// The header holding the provider's event (delivery) id, for replay protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_header: Option<String>,
    /// JSONPath of the event id in the body, for replay protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_path: Option<JsonPathExpr>,
    /// How long an event id is remembered when the scheme signs no timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_window: Option<HumanDuration>,
    /// Most event ids remembered for this source at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_capacity: Option<u32>,
}

fn default_tolerance() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Gleaner,
    Whoop,
    Stripe,
    Github,
    Slack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderFormat {
    /// One signature, or several separated by commas (secret rotation).
    Plain,
    /// `t=<timestamp>,v1=<sig>[,v1=<sig>…]`: the timestamp travels in the same header.
    Stripe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signed {
    /// `timestamp + "." + body`
    TimestampDotBody,
    /// `timestamp + body`
    TimestampBody,
    /// The body alone (no timestamp, so no freshness check).
    Body,
    /// `"v0:" + timestamp + ":" + body`
    SlackV0,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
}

/// Where the signed timestamp is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampAt {
    None,
    Header(String),
    /// The `t=` entry of a Stripe-style signature header.
    SignatureHeader,
}

/// A signature scheme with every preset default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    pub header: String,
    pub header_format: HeaderFormat,
    pub timestamp: TimestampAt,
    pub signed: Signed,
    pub encoding: Encoding,
    pub prefix: Option<String>,
    pub unit: TimeUnit,
    pub tolerance_ms: i64,
    pub event_id_header: Option<String>,
    pub event_id_path: Option<JsonPathExpr>,
    /// How long a seen event stays remembered.
    pub replay_window_ms: i64,
    pub replay_capacity: u32,
}

struct PresetDefaults {
    header: &'static str,
    timestamp_header: Option<&'static str>,
    header_format: HeaderFormat,
    signed: Signed,
    encoding: Encoding,
    prefix: Option<&'static str>,
    unit: TimeUnit,
    event_id_header: Option<&'static str>,
    event_id_path: Option<&'static str>,
}

impl Preset {
    /// Each provider's scheme as its documentation describes it.
    fn defaults(self) -> PresetDefaults {
        use Encoding::*;
        let base = PresetDefaults {
            header: "x-gleaner-signature",
            timestamp_header: Some("x-gleaner-timestamp"),
            header_format: HeaderFormat::Plain,
            signed: Signed::TimestampDotBody,
            encoding: Hex,
            prefix: Some("sha256="),
            unit: TimeUnit::Seconds,
            event_id_header: None,
            event_id_path: None,
        };
        match self {
            Preset::Gleaner => base,
            // base64(HMAC(timestamp_ms + body)); the event's trace_id names the delivery.
            Preset::Whoop => PresetDefaults {
                header: "x-whoop-signature",
                timestamp_header: Some("x-whoop-signature-timestamp"),
                signed: Signed::TimestampBody,
                encoding: Base64,
                prefix: None,
                unit: TimeUnit::Millis,
                event_id_path: Some("$.trace_id"),
                ..base
            },
            // Stripe-Signature: t=<s>,v1=<hex HMAC(t + "." + body)>; the event is `evt_…` in `id`.
            Preset::Stripe => PresetDefaults {
                header: "stripe-signature",
                timestamp_header: None,
                header_format: HeaderFormat::Stripe,
                prefix: None,
                event_id_path: Some("$.id"),
                ..base
            },
            // X-Hub-Signature-256: sha256=<hex HMAC(body)>; no timestamp; X-GitHub-Delivery.
            Preset::Github => PresetDefaults {
                header: "x-hub-signature-256",
                timestamp_header: None,
                signed: Signed::Body,
                event_id_header: Some("x-github-delivery"),
                ..base
            },
            // X-Slack-Signature: v0=<hex HMAC("v0:" + ts + ":" + body)>, ts in seconds.
            Preset::Slack => PresetDefaults {
                header: "x-slack-signature",
                timestamp_header: Some("x-slack-request-timestamp"),
                signed: Signed::SlackV0,
                prefix: Some("v0="),
                event_id_path: Some("$.event_id"),
                ..base
            },
        }
    }
}

/// Default memory of event ids when the scheme signs no timestamp.
const DEFAULT_REPLAY_WINDOW_MS: i64 = 24 * 3600 * 1000;
const DEFAULT_REPLAY_CAPACITY: u32 = 10_000;

impl SignatureSpec {
    /// The scheme to verify with: the preset's defaults, overridden by the keys given.
    pub fn scheme(&self) -> Scheme {
        let d = self.preset.unwrap_or(Preset::Gleaner).defaults();
        let header_format = self.header_format.unwrap_or(d.header_format);
        let signed = self.signed.unwrap_or(d.signed);
        let timestamp = match (&self.timestamp_header, header_format, signed) {
            (Some(h), _, _) => TimestampAt::Header(h.to_ascii_lowercase()),
            (None, _, Signed::Body) => TimestampAt::None,
            (None, HeaderFormat::Stripe, _) => TimestampAt::SignatureHeader,
            (None, HeaderFormat::Plain, _) => d
                .timestamp_header
                .map_or(TimestampAt::None, |h| TimestampAt::Header(h.into())),
        };
        let tolerance_ms = i64::try_from(self.tolerance.0.as_millis()).unwrap_or(i64::MAX);
        // A timestamp is accepted from now - tolerance to now + tolerance, so an event id
        // must be remembered for twice the tolerance to refuse every replay the clock
        // check lets through.
        let replay_window_ms = match (&timestamp, &self.replay_window) {
            (TimestampAt::None, Some(w)) => i64::try_from(w.0.as_millis()).unwrap_or(i64::MAX),
            (TimestampAt::None, None) => DEFAULT_REPLAY_WINDOW_MS,
            _ => tolerance_ms.saturating_mul(2),
        };
        let path = |p: &str| JsonPathExpr::parse(p).ok();
        Scheme {
            header: self
                .header
                .as_deref()
                .unwrap_or(d.header)
                .to_ascii_lowercase(),
            header_format,
            timestamp,
            signed,
            encoding: self.encoding.unwrap_or(d.encoding),
            prefix: self
                .prefix
                .clone()
                .or_else(|| d.prefix.map(str::to_owned))
                .filter(|p| !p.is_empty()),
            unit: self.timestamp_unit.unwrap_or(d.unit),
            tolerance_ms,
            event_id_header: self
                .event_id_header
                .clone()
                .or_else(|| d.event_id_header.map(str::to_owned))
                .map(|h| h.to_ascii_lowercase()),
            event_id_path: self
                .event_id_path
                .clone()
                .or_else(|| d.event_id_path.and_then(path)),
            replay_window_ms,
            replay_capacity: self.replay_capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY),
        }
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        let s = self.scheme();
        let valid = |h: &str| http::HeaderName::from_bytes(h.as_bytes()).is_ok();
        c.check(valid(&s.header), "header", "not a valid HTTP header name");
        for (f, h) in [
            ("timestamp_header", &self.timestamp_header),
            ("event_id_header", &self.event_id_header),
        ] {
            if let Some(h) = h {
                c.check(valid(h), f, "not a valid HTTP header name");
                c.check(
                    !h.eq_ignore_ascii_case(&s.header),
                    f,
                    "must differ from the signature header",
                );
            }
        }
        if self.timestamp_header.is_some() {
            c.check(
                s.signed != Signed::Body,
                "timestamp_header",
                "`signed: body` signs no timestamp, so a timestamp header proves nothing; \
                 remove it or sign the timestamp",
            );
            c.check(
                s.header_format != HeaderFormat::Stripe,
                "timestamp_header",
                "`header_format: stripe` reads the timestamp from the signature header's t=; \
                 remove timestamp_header",
            );
        }
        c.check(
            s.timestamp != TimestampAt::None || s.signed == Signed::Body,
            "signed",
            "this layout signs a timestamp; set timestamp_header",
        );
        if let Some(p) = &self.prefix {
            c.check(
                p.len() <= 32 && p.bytes().all(|b| b.is_ascii_graphic()),
                "prefix",
                "use at most 32 visible ASCII characters",
            );
        }
        c.range("tolerance", Some(self.tolerance.secs()), 1, 3600);
        if let Some(w) = &self.replay_window {
            c.check(
                s.timestamp == TimestampAt::None,
                "replay_window",
                "applies only when no timestamp is signed (with one, event ids are kept for \
                 twice the tolerance)",
            );
            c.range("replay_window", Some(w.secs()), 60, 7 * 86_400);
        }
        c.range(
            "replay_capacity",
            self.replay_capacity,
            1,
            MAX_REPLAY_CAPACITY,
        );
    }
}

/// "An event of this type names a record of source `source`: fetch it now."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The event type to match exactly, e.g. `recovery.updated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// JSONPath of the event type in the body; `$.type` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_path: Option<JsonPathExpr>,
    /// JSONPath of the record's id in the body, e.g. `$.id`.
    pub id_path: JsonPathExpr,
    /// The `json` source the record belongs to.
    pub source: SourceId,
    /// The resource to fetch, relative to that source's URL, with `{id}` for the id.
    pub resource: String,
    /// JSONPath of the records in the fetched body; the source's own `records` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<JsonPathExpr>,
}

/// The placeholder for the event's id in [`EventSpec::resource`].
pub const ID_PLACEHOLDER: &str = "{id}";

pub(crate) fn check_events(events: &[EventSpec], c: &mut Checker) {
    c.check(
        events.len() <= MAX_EVENTS,
        "events",
        format!("at most {MAX_EVENTS} event mappings"),
    );
    for (i, e) in events.iter().enumerate() {
        c.at("events", |c| {
            c.at(format!("[{i}]"), |c| {
                c.check(
                    !e.event_type.is_empty() && e.event_type.len() <= 200,
                    "type",
                    "1 to 200 characters",
                );
                c.check(
                    e.resource.contains(ID_PLACEHOLDER) && e.resource.len() <= 1000,
                    "resource",
                    "a path of at most 1000 characters containing {id}, e.g. \
                     cycle/{id}/recovery",
                );
            });
        });
        if events[..i].iter().any(|o| o.event_type == e.event_type) {
            c.err(
                &format!("events[{i}].type"),
                format!("{:?} is mapped twice; keep one", e.event_type),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::harvest::source::SourceDef;

    fn fields(extra: &str) -> Vec<String> {
        let def = format!(r#"{{"id": "h", "kind": "push", "key": {{"field": "id"}}, {extra}}}"#);
        match SourceDef::parse_json(def.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e.fields().iter().map(|f| f.field.clone()).collect(),
        }
    }

    #[test]
    fn event_mappings_are_checked() {
        let ok = r#""events": [{"type": "recovery.updated", "id_path": "$.id",
                    "source": "recovery", "resource": "cycle/{id}/recovery"}]"#;
        assert!(fields(ok).is_empty());
        let bad = r#""events": [
            {"type": "", "id_path": "$.id", "source": "r", "resource": "cycle/recovery"},
            {"type": "a", "id_path": "$.id", "source": "r", "resource": "{id}"},
            {"type": "a", "id_path": "$.id", "source": "r", "resource": "x/{id}"}]"#;
        assert_eq!(
            fields(bad),
            ["events[0].type", "events[0].resource", "events[2].type"]
        );
        // Unknown keys and bad paths are refused with the field named.
        let e = SourceDef::parse_json(
            br#"{"id": "h", "kind": "push", "key": {"field": "id"},
                "events": [{"type": "a", "id_path": "id", "source": "r", "resource": "{id}"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("JSONPath"), "{e}");
        let e = SourceDef::parse_json(
            br#"{"id": "h", "kind": "push", "key": {"field": "id"},
                "events": [{"type": "a", "id_path": "$.id", "source": "r", "resource": "{id}", "url": "x"}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `url`"), "{e}");
    }
}
