//! Compiled patterns in definitions: CSS selectors, regexes, JSONPaths, date formats.
//!
//! Each keeps the text the user wrote (for serialization and messages) beside the compiled
//! form, and compiles at deserialization, so a definition that exists is one that works:
//! extraction never re-parses a selector per page and never meets a bad one. Texts are
//! capped in length, and regexes in compiled size, so no definition can make the shared
//! CPU pool spend unbounded time or memory (the regex crate matches in linear time).

use std::fmt;

use regex::Regex;
use scraper::Selector;
use serde_json_path::JsonPath;

use super::values::string_serde;
use crate::harvest::limits::{MAX_PATTERN_CHARS, MAX_REGEX_COMPILED_BYTES};

fn check_len(what: &str, s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("empty {what}"));
    }
    if s.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "{what} is longer than {MAX_PATTERN_CHARS} characters"
        ));
    }
    Ok(())
}

macro_rules! compiled {
    ($(#[$doc:meta])* $name:ident, $inner:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            text: String,
            compiled: $inner,
        }
        impl $name {
            /// The text as written in the definition.
            pub fn as_str(&self) -> &str {
                &self.text
            }
            /// The compiled form.
            pub fn get(&self) -> &$inner {
                &self.compiled
            }
        }
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.text == other.text
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.text)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text)
            }
        }
        string_serde!($name);
    };
}

compiled!(
    /// A CSS selector (html5ever/servo `selectors` syntax).
    CssSelector,
    Selector
);

impl CssSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_len("CSS selector", s)?;
        let compiled =
            Selector::parse(s).map_err(|e| format!("invalid CSS selector {s:?}: {e}"))?;
        Ok(CssSelector {
            text: s.to_owned(),
            compiled,
        })
    }
}

compiled!(
    /// A regular expression (Rust `regex` syntax, linear-time matching).
    Pattern,
    Regex
);

impl Pattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_len("regex", s)?;
        let compiled = regex::RegexBuilder::new(s)
            .size_limit(MAX_REGEX_COMPILED_BYTES)
            .dfa_size_limit(MAX_REGEX_COMPILED_BYTES)
            .build()
            .map_err(|e| {
                // The regex crate's messages span several lines with a caret diagram;
                // keep them on one line for API error bodies and logs.
                let msg = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("invalid regex {s:?}: {msg}")
            })?;
        Ok(Pattern {
            text: s.to_owned(),
            compiled,
        })
    }

    /// The value a field regex yields for `text`: the group named `value` if the regex has
    /// one, else group 1 if it has groups, else the whole match; `None` when it does not
    /// match (or the chosen group did not take part).
    pub fn capture<'t>(&self, text: &'t str) -> Option<&'t str> {
        let caps = self.compiled.captures(text)?;
        let m = if let Some(m) = caps.name("value") {
            Some(m)
        } else if caps.len() > 1 {
            caps.get(1)
        } else {
            caps.get(0)
        };
        m.map(|m| m.as_str())
    }
}

compiled!(
    /// A JSONPath query (RFC 9535).
    JsonPathExpr,
    JsonPath
);

impl JsonPathExpr {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_len("JSONPath", s)?;
        let compiled = JsonPath::parse(s).map_err(|e| {
            format!("invalid JSONPath {s:?}: {e}; JSONPaths start with '$', e.g. $.data[*]")
        })?;
        Ok(JsonPathExpr {
            text: s.to_owned(),
            compiled,
        })
    }
}

compiled!(
    /// A date or date-time format in the `time` crate's description syntax, e.g.
    /// `[day].[month].[year]` or `[day padding:none]/[month padding:none]/[year] [hour]:[minute]`.
    DateFormat,
    time::format_description::OwnedFormatItem
);

impl DateFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        check_len("date format", s)?;
        let compiled = time::format_description::parse_owned::<2>(s).map_err(|e| {
            format!("invalid date format {s:?}: {e}; write e.g. \"[day].[month].[year]\"")
        })?;
        Ok(DateFormat {
            text: s.to_owned(),
            compiled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_patterns_are_refused_with_the_text() {
        let e = CssSelector::parse("div[").unwrap_err();
        assert!(e.starts_with("invalid CSS selector \"div[\""), "{e}");
        assert!(Pattern::parse("(unclosed")
            .unwrap_err()
            .contains("invalid regex"));
        assert!(JsonPathExpr::parse("data[*]")
            .unwrap_err()
            .contains("invalid JSONPath"));
        assert!(DateFormat::parse("[dya]")
            .unwrap_err()
            .contains("invalid date format"));
        assert!(CssSelector::parse(" ").is_err());
        assert!(CssSelector::parse(&"a ".repeat(MAX_PATTERN_CHARS)).is_err());
        // A regex whose compiled form is huge is refused instead of eating memory.
        assert!(Pattern::parse("\\w{1000}\\w{1000}\\w{1000}").is_err());
    }

    #[test]
    fn regex_capture_picks_value_group_then_first_group() {
        let p = Pattern::parse(r"no\.\s*(\d+)").unwrap();
        assert_eq!(p.capture("Reg no. 42"), Some("42"));
        let p = Pattern::parse(r"(?P<cur>\D+)(?P<value>[\d,]+)").unwrap();
        assert_eq!(p.capture("€1,5"), Some("1,5"));
        let p = Pattern::parse(r"\d+").unwrap();
        assert_eq!(p.capture("ab 12 cd"), Some("12"));
        assert_eq!(p.capture("none"), None);
    }

    #[test]
    fn serde_round_trip_keeps_text() {
        let s: CssSelector = serde_json::from_str("\"td.name > a\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"td.name > a\"");
        let e = serde_json::from_str::<CssSelector>("\"div[\"").unwrap_err();
        assert!(e.to_string().contains("invalid CSS selector"));
    }
}
