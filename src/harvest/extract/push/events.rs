//! Provider events that name a record to fetch: `{"type": "recovery.updated", "id": 10235}`
//! becomes "fetch `cycle/10235/recovery` of source `recovery` now".
//!
//! Providers keep webhook bodies minimal (a type and an id) and expect the receiver to
//! fetch the record, so the event itself is not what is stored. The id is put into a URL
//! path, so only a plain id alphabet is taken; the resolved URL must then stay on the
//! target source's origin ([`FetchNow::resolve`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::fetch_now::{FetchNow, FetchNowError};
use crate::harvest::source::{EventSpec, JsonPathExpr, ID_PLACEHOLDER};

/// Longest id put into a resource path.
const MAX_ID_CHARS: usize = 200;

/// What a matched event asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFetch {
    pub event_type: String,
    pub request: FetchNow,
    /// JSONPath of the records in the fetched body, overriding the source's.
    pub records: Option<JsonPathExpr>,
}

/// The first mapping whose type the event has, as a fetch request; `None` when the body is
/// not a JSON object or no mapping matches (the body is then stored as pushed records).
pub fn match_event(events: &[EventSpec], body: &[u8]) -> Result<Option<EventFetch>, FetchNowError> {
    if events.is_empty() {
        return Ok(None);
    }
    let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(spec) = events
        .iter()
        .find(|e| event_type(e, &v) == Some(&e.event_type))
    else {
        return Ok(None);
    };
    let id = match spec.id_path.get().query(&v).first() {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(FetchNowError::Invalid(format!(
                "event {:?} has no string or number id at {}",
                spec.event_type,
                spec.id_path.as_str()
            )))
        }
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
    if id.is_empty() || id.len() > MAX_ID_CHARS || !id.chars().all(plain) || id == "." || id == ".."
    {
        return Err(FetchNowError::Invalid(format!(
            "event {:?}: id {:?} is not 1 to {MAX_ID_CHARS} of A-Z a-z 0-9 - _ . ~",
            spec.event_type,
            id.chars().take(40).collect::<String>()
        )));
    }
    Ok(Some(EventFetch {
        event_type: spec.event_type.clone(),
        request: FetchNow {
            source: spec.source.clone(),
            resource: spec.resource.replace(ID_PLACEHOLDER, &id),
            params: BTreeMap::new(),
        },
        records: spec.records.clone(),
    }))
}

fn event_type<'a>(e: &EventSpec, v: &'a Value) -> Option<&'a String> {
    let found = match &e.type_path {
        Some(p) => p.get().query(v).first(),
        None => v.get("type"),
    };
    match found {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<EventSpec> {
        serde_json::from_str(
            r#"[{"type": "recovery.updated", "id_path": "$.id", "source": "recovery",
                 "resource": "cycle/{id}/recovery", "records": "$"},
                {"type": "push", "type_path": "$.hook.kind", "id_path": "$.repo.id",
                 "source": "repos", "resource": "repos/{id}"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn a_matching_event_becomes_a_fetch() {
        let body = br#"{"type":"recovery.updated","user_id":10129,"id":10235,"trace_id":"t"}"#;
        let f = match_event(&events(), body).unwrap().unwrap();
        assert_eq!(f.request.source.as_str(), "recovery");
        assert_eq!(f.request.resource, "cycle/10235/recovery");
        assert_eq!(f.records.unwrap().as_str(), "$");
        let body = br#"{"hook":{"kind":"push"},"repo":{"id":"a-b_c.1"}}"#;
        let f = match_event(&events(), body).unwrap().unwrap();
        assert_eq!(f.request.resource, "repos/a-b_c.1");
    }

    #[test]
    fn other_bodies_are_not_events() {
        for body in [
            &br#"{"type":"workout.updated","id":1}"#[..],
            br#"[{"type":"recovery.updated","id":1}]"#,
            b"{\"id\":1}\n{\"id\":2}\n",
            br#"{"type":7,"id":1}"#,
        ] {
            assert_eq!(match_event(&events(), body).unwrap(), None);
        }
    }

    #[test]
    fn ids_that_could_leave_the_path_are_refused() {
        for id in [
            r#""../admin""#,
            r#""a/b""#,
            r#""..""#,
            r#""""#,
            "null",
            r#""a?b""#,
        ] {
            let body = format!(r#"{{"type":"recovery.updated","id":{id}}}"#);
            let e = match_event(&events(), body.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("recovery.updated"), "{e}");
        }
    }
}
