//! How records are found in an HTML page and what each field is: shared by `html` and
//! `sitemap` sources, plus the key spec and field types shared by every kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::patterns::{CssSelector, DateFormat, Pattern};

/// Where a record's key comes from.
///
/// TOML: `key = { field = "reg_no" }`, `key = { fields = ["country", "reg_no"] }` or
/// `key = "url"`. JSON: `{"field": "reg_no"}` or `"url"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySpec {
    /// One field's value. For JSON records a name starting with '/' is a JSON Pointer.
    Field(String),
    /// Several fields' values joined with '|'.
    Fields(Vec<String>),
    /// The record's URL: its detail page when there is one, else the page it was found on.
    Url,
}

impl KeySpec {
    /// The field names this key reads.
    pub fn field_names(&self) -> Vec<&str> {
        match self {
            KeySpec::Field(f) => vec![f.as_str()],
            KeySpec::Fields(f) => f.iter().map(String::as_str).collect(),
            KeySpec::Url => vec![],
        }
    }

    /// Checks the key names fields that exist (`known`), or for JSON-like kinds where
    /// fields are not declared, that names are non-empty.
    pub(crate) fn check(
        &self,
        c: &mut Checker,
        known: Option<&dyn Fn(&str) -> bool>,
        url_ok: bool,
    ) {
        match self {
            KeySpec::Url if !url_ok => c.err(
                "key",
                "this source kind has no record URL; use { field = \"...\" }",
            ),
            KeySpec::Fields(f) if f.is_empty() || f.len() > 8 => {
                c.err("key.fields", "list 1 to 8 field names")
            }
            _ => {}
        }
        for name in self.field_names() {
            if name.trim().is_empty() {
                c.err("key", "the key field name is empty");
            } else if let Some(known) = known {
                c.check(
                    known(name),
                    "key",
                    format!("the key field {name:?} is not one of the extracted fields"),
                );
            }
        }
    }
}

/// What a field's text is converted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    #[default]
    String,
    /// A JSON number; accepts thousands separators and currency signs (`€ 1.234,50`).
    Number,
    /// A JSON integer; `12.0` is accepted, `12.5` is not.
    Integer,
    /// true/false, yes/no, y/n, on/off, 1/0 (any case).
    Bool,
    /// `YYYY-MM-DD`, parsed with `format` when set, else ISO 8601 / RFC 3339.
    Date,
    /// RFC 3339 in UTC, parsed with `format` when set (no offset in it means UTC), else
    /// RFC 3339 or RFC 2822.
    Datetime,
    /// An absolute URL resolved against the page, normalised.
    Url,
}

/// What is done with whitespace in extracted text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Whitespace {
    /// Trim both ends and turn every inner run of whitespace into one space.
    #[default]
    Collapse,
    /// Trim both ends only.
    Trim,
    /// Keep as is.
    Keep,
}

/// Conversion options of a CSV column (HTML fields carry the same three keys inline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    #[serde(default, rename = "type")]
    pub ty: FieldType,
    /// Date format for `date` / `datetime`, e.g. `[day].[month].[year]`.
    #[serde(default)]
    pub format: Option<DateFormat>,
    /// Decimal separator for `number`: '.' (default) or ','.
    #[serde(default)]
    pub decimal: Option<char>,
}

impl Conversion {
    pub fn opts(&self) -> ConvertOpts<'_> {
        ConvertOpts {
            ty: self.ty,
            format: self.format.as_ref(),
            decimal: self.decimal.unwrap_or('.'),
        }
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        check_conversion(c, self.ty, self.format.as_ref(), self.decimal);
    }
}

/// A borrowed view of conversion options, as the converter takes them.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOpts<'a> {
    pub ty: FieldType,
    pub format: Option<&'a DateFormat>,
    pub decimal: char,
}

fn check_conversion(
    c: &mut Checker,
    ty: FieldType,
    format: Option<&DateFormat>,
    decimal: Option<char>,
) {
    c.check(
        format.is_none() || matches!(ty, FieldType::Date | FieldType::Datetime),
        "format",
        "format only applies to type = \"date\" or \"datetime\"",
    );
    if let Some(d) = decimal {
        c.check(matches!(d, '.' | ','), "decimal", "use '.' or ','");
        c.check(
            matches!(ty, FieldType::Number | FieldType::Integer),
            "decimal",
            "decimal only applies to type = \"number\" or \"integer\"",
        );
    }
}

/// One field of an HTML record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Selector relative to the record element; absent means the record element itself.
    #[serde(default)]
    pub selector: Option<CssSelector>,
    /// Take this attribute's value instead of the text (e.g. `href`, `data-id`).
    #[serde(default)]
    pub attr: Option<String>,
    /// Take the inner HTML instead of the text.
    #[serde(default)]
    pub html: bool,
    /// Keep only what this regex captures (group `value`, else group 1, else the match).
    #[serde(default)]
    pub regex: Option<Pattern>,
    #[serde(default)]
    pub whitespace: Whitespace,
    /// What the text is converted to.
    #[serde(default, rename = "type")]
    pub ty: FieldType,
    /// Date format for `date` / `datetime`, e.g. `[day].[month].[year]`.
    #[serde(default)]
    pub format: Option<DateFormat>,
    /// Decimal separator for `number` / `integer`: '.' (default) or ','.
    #[serde(default)]
    pub decimal: Option<char>,
    /// Every match as an array instead of the first.
    #[serde(default)]
    pub many: bool,
    /// The record is not whole without this field: when it is missing, empty or does not
    /// convert, the record is an error for its URL, is not stored, and its stored version
    /// stays as it was; the run is then not complete, so nothing is marked removed. On a
    /// detail page this is how a page that is not the detail page (a session hub, an error
    /// page, a new layout) is told apart.
    #[serde(default)]
    pub required: bool,
}

impl FieldSpec {
    /// A text field at `selector` (convenience for code and tests).
    pub fn text(selector: &str) -> Result<Self, String> {
        Ok(FieldSpec {
            selector: Some(CssSelector::parse(selector)?),
            attr: None,
            html: false,
            regex: None,
            whitespace: Whitespace::Collapse,
            ty: FieldType::String,
            format: None,
            decimal: None,
            many: false,
            required: false,
        })
    }

    pub(crate) fn check(&self, c: &mut Checker) {
        c.check(
            !(self.html && self.attr.is_some()),
            "html",
            "take either an attribute (attr) or the inner HTML (html = true), not both",
        );
        if let Some(a) = &self.attr {
            let ok = !a.is_empty()
                && a.len() <= 256
                && !a.chars().any(|ch| {
                    ch.is_whitespace()
                        || ch.is_control()
                        || matches!(ch, '"' | '\'' | '>' | '/' | '=')
                });
            c.check(ok, "attr", "an HTML attribute name such as \"href\"");
        }
        check_conversion(c, self.ty, self.format.as_ref(), self.decimal);
    }

    pub fn opts(&self) -> ConvertOpts<'_> {
        ConvertOpts {
            ty: self.ty,
            format: self.format.as_ref(),
            decimal: self.decimal.unwrap_or('.'),
        }
    }
}

/// The records on a page and their fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Selector for each record's element (a table row, a list item, a card).
    pub record: CssSelector,
    pub key: KeySpec,
    pub fields: BTreeMap<String, FieldSpec>,
    /// The record's detail page, whose fields join the record.
    #[serde(default)]
    pub detail: Option<DetailSpec>,
}

/// A detail page linked from each record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailSpec {
    /// Selector, relative to the record element, of the link (its `href`) to the detail page.
    pub link: CssSelector,
    /// Element of the detail page the fields are relative to; absent means the whole page.
    #[serde(default)]
    pub root: Option<CssSelector>,
    pub fields: BTreeMap<String, FieldSpec>,
}

/// Most fields per record spec.
pub const MAX_FIELDS: usize = 200;

pub(crate) fn check_field_name(c: &mut Checker, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('/')
        && !name.chars().any(|ch| ch.is_control() || ch.is_whitespace());
    c.check(
        ok,
        name,
        "field names are 1-64 characters without spaces and not starting with '/'",
    );
}

fn check_fields(c: &mut Checker, fields: &BTreeMap<String, FieldSpec>) {
    c.check(!fields.is_empty(), "fields", "define at least one field");
    c.check(
        fields.len() <= MAX_FIELDS,
        "fields",
        format!("at most {MAX_FIELDS} fields"),
    );
    c.at("fields", |c| {
        for (name, f) in fields {
            check_field_name(c, name);
            c.at(name.clone(), |c| f.check(c));
        }
    });
}

impl RecordSpec {
    pub(crate) fn check(&self, c: &mut Checker) {
        check_fields(c, &self.fields);
        self.key
            .check(c, Some(&|n: &str| self.fields.contains_key(n)), true);
        if let Some(d) = &self.detail {
            c.at("detail", |c| {
                check_fields(c, &d.fields);
                c.at("fields", |c| {
                    for name in d.fields.keys() {
                        c.check(
                            !self.fields.contains_key(name),
                            name,
                            "a listing field has the same name; rename one",
                        );
                    }
                });
            });
        }
    }
}
