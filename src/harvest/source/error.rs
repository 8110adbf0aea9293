//! Errors in source definitions, each naming the field it is about.
//!
//! Deserialization errors (unknown field, wrong type, bad selector syntax) carry the dotted
//! path serde was at, via `serde_path_to_error`; semantic checks collect every problem at
//! once through [`Checker`], so a user fixes a definition in one round trip.

use std::fmt;

use crate::error::ErrorKind;

/// One problem with one field of a definition, e.g.
/// `extract.fields.price.selector: invalid CSS selector "div[": ...`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Dotted path of the field (`scope.include[2]`); empty for the definition as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a source definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not valid JSON or TOML at all.
    #[error("source definition is not valid {format}: {reason}")]
    Syntax {
        format: &'static str,
        reason: String,
    },
    /// The definition is larger than [`crate::harvest::limits::MAX_DEFINITION_BYTES`].
    #[error("source definition is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// One or more fields are wrong; each names its field.
    #[error("{}", join(.0))]
    Invalid(Vec<FieldError>),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl DefinitionError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DefinitionError::TooLarge { .. } => ErrorKind::TooLarge,
            DefinitionError::Syntax { .. } | DefinitionError::Invalid(_) => ErrorKind::InvalidInput,
        }
    }

    /// The field errors, empty for syntax and size errors.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            DefinitionError::Invalid(v) => v,
            _ => &[],
        }
    }
}

/// Collects field errors during validation, with a path prefix stack.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    prefix: Vec<String>,
    pub(crate) errors: Vec<FieldError>,
}

impl Checker {
    /// Runs `f` with `segment` appended to the path (`.segment`, or `[i]` when it starts
    /// with '[').
    pub(crate) fn at(&mut self, segment: impl Into<String>, f: impl FnOnce(&mut Checker)) {
        self.prefix.push(segment.into());
        f(self);
        self.prefix.pop();
    }

    fn path(&self, field: &str) -> String {
        let mut p = String::new();
        for s in self.prefix.iter().map(String::as_str).chain([field]) {
            if s.is_empty() {
                continue;
            }
            if !p.is_empty() && !s.starts_with('[') {
                p.push('.');
            }
            p.push_str(s);
        }
        p
    }

    /// Records a problem with `field` (relative to the current prefix).
    pub(crate) fn err(&mut self, field: &str, message: impl Into<String>) {
        let field = self.path(field);
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// Records `expected` as the problem when `ok` is false.
    pub(crate) fn check(&mut self, ok: bool, field: &str, expected: impl Into<String>) {
        if !ok {
            self.err(field, expected);
        }
    }

    /// Checks an optional count against an inclusive range.
    pub(crate) fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        field: &str,
        value: Option<T>,
        lo: T,
        hi: T,
    ) {
        if let Some(v) = value {
            if v < lo || v > hi {
                self.err(field, format!("{v} is out of range; use {lo} to {hi}"));
            }
        }
    }

    /// Checks an optional duration against `lo` and, when given, `hi`; the message gives
    /// the bounds in the unit the value was written in (`400d`, `250ms`).
    pub(crate) fn duration_range(
        &mut self,
        field: &str,
        value: Option<super::values::HumanDuration>,
        lo: std::time::Duration,
        hi: Option<std::time::Duration>,
    ) {
        let Some(v) = value else { return };
        let (lo_s, hi_s) = (v.in_unit_of(lo), hi.map(|h| v.in_unit_of(h)));
        let long = hi.is_some_and(|hi| v.0 > hi);
        match hi_s {
            Some(h) if lo.is_zero() && long => {
                self.err(field, format!("{v} is too long; use at most {h}"));
            }
            Some(h) if v.0 < lo || long => {
                self.err(field, format!("{v} is out of range; use {lo_s} to {h}"));
            }
            _ if v.0 < lo => self.err(field, format!("{v} is too short; use at least {lo_s}")),
            _ => {}
        }
    }

    pub(crate) fn finish(self) -> Result<(), DefinitionError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(DefinitionError::Invalid(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_dots_and_brackets() {
        let mut c = Checker::default();
        c.at("extract", |c| {
            c.at("fields", |c| c.at("price", |c| c.err("selector", "bad")));
            c.at("[3]", |c| c.err("", "bad"));
        });
        c.err("id", "bad");
        let e = c.finish().unwrap_err();
        let fields: Vec<_> = e.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["extract.fields.price.selector", "extract[3]", "id"]
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e
            .to_string()
            .starts_with("extract.fields.price.selector: bad; "));
    }

    #[test]
    fn duration_ranges_speak_the_users_unit() {
        use super::super::values::HumanDuration;
        use std::time::Duration;
        let d = |s| Some(HumanDuration::parse(s).unwrap());
        let mut c = Checker::default();
        c.duration_range(
            "a",
            d("90d"),
            Duration::from_secs(60),
            Some(Duration::from_secs(30 * 86_400)),
        );
        c.duration_range(
            "b",
            d("1500ms"),
            Duration::ZERO,
            Some(Duration::from_secs(1)),
        );
        c.duration_range("c", d("30s"), Duration::from_secs(60), None);
        c.duration_range("ok", d("400d"), Duration::from_secs(60), None);
        let msgs: Vec<String> = c.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "a: 90d is out of range; use 1m to 30d",
                "b: 1500ms is too long; use at most 1000ms",
                "c: 30s is too short; use at least 60s",
            ]
        );
    }
}
