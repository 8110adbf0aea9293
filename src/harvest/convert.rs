//! Turning extracted text into typed JSON values: numbers, integers, booleans, dates, URLs.
//!
//! Scraped numbers come formatted for people (`€ 1.234,50`, `12 500 EUR`, `(3)`): the
//! converter keeps the first number in the text, drops currency and units around it and
//! thousands separators inside it, and uses the configured decimal separator. Results are
//! always finite, so records stay canonicalisable.

use serde_json::{Number, Value};
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use url::Url;

use super::source::{ConvertOpts, FieldType};
use super::urls;

/// Converts `raw` (already trimmed as configured) to the JSON value of `opts.ty`.
/// `base` resolves relative URLs. Errors say what was expected, for a per-record warning.
pub fn convert(raw: &str, opts: ConvertOpts<'_>, base: &Url) -> Result<Value, String> {
    match opts.ty {
        FieldType::String => Ok(Value::String(raw.to_owned())),
        FieldType::Number => number(raw, opts.decimal, false),
        FieldType::Integer => number(raw, opts.decimal, true),
        FieldType::Bool => boolean(raw),
        FieldType::Date => date(raw, opts),
        FieldType::Datetime => datetime(raw, opts),
        FieldType::Url => urls::resolve(base, raw)
            .map(|u| Value::String(u.into()))
            .ok_or_else(|| format!("{:?} is not an http(s) URL", clip(raw))),
    }
}

/// At most 40 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn number(raw: &str, decimal: char, integer: bool) -> Result<Value, String> {
    let thousands: &[char] = if decimal == ',' {
        &['.', ' ', '\u{a0}', '\u{202f}', '\'', '’']
    } else {
        &[',', ' ', '\u{a0}', '\u{202f}', '\'', '’']
    };
    let mut digits = String::new();
    let mut negative = false;
    let mut seen_decimal = false;
    let mut chars = raw.chars().peekable();
    // Before the number: currency, labels, a sign or an opening parenthesis (accounting
    // style negative).
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            break;
        }
        if matches!(c, '-' | '−' | '(') {
            negative = true;
        } else if c == decimal && chars.clone().nth(1).is_some_and(|d| d.is_ascii_digit()) {
            break; // ".5"
        }
        chars.next();
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if c == decimal && !seen_decimal && chars.peek().is_some_and(char::is_ascii_digit) {
            seen_decimal = true;
            digits.push('.');
        } else if thousands.contains(&c)
            && chars.peek().is_some_and(char::is_ascii_digit)
            && !seen_decimal
        {
            continue;
        } else if matches!(c, 'e' | 'E') && !digits.is_empty() {
            // Scientific notation: 1.5e3, 2E-4.
            let mut exp = String::from("e");
            if let Some(&s @ ('-' | '+')) = chars.peek() {
                exp.push(s);
                chars.next();
            }
            while let Some(&d) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                exp.push(d);
                chars.next();
            }
            if exp.len() > 1 && exp != "e-" && exp != "e+" {
                digits.push_str(&exp);
            }
            break;
        } else {
            break;
        }
    }
    if !digits.bytes().any(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not a number", clip(raw)));
    }
    let text = if negative {
        format!("-{digits}")
    } else {
        digits
    };
    if !text.contains(['.', 'e']) {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
    }
    let f: f64 = text
        .parse()
        .map_err(|_| format!("{:?} is not a number", clip(raw)))?;
    if integer {
        if f.fract() != 0.0 || f.abs() > 9.007_199_254_740_992e15 {
            return Err(format!("{:?} is not a whole number", clip(raw)));
        }
        return Ok(Value::Number((f as i64).into()));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{:?} is out of range", clip(raw)))
}

fn boolean(raw: &str) -> Result<Value, String> {
    let t = raw.trim().to_ascii_lowercase();
    match t.as_str() {
        "true" | "yes" | "y" | "on" | "1" | "x" | "✓" => Ok(Value::Bool(true)),
        "false" | "no" | "n" | "off" | "0" | "" => Ok(Value::Bool(false)),
        _ => Err(format!(
            "{:?} is not true/false, yes/no, on/off or 1/0",
            clip(raw)
        )),
    }
}

fn date(raw: &str, opts: ConvertOpts<'_>) -> Result<Value, String> {
    let t = raw.trim();
    let d = match opts.format {
        Some(f) => Date::parse(t, f.get())
            .or_else(|_| PrimitiveDateTime::parse(t, f.get()).map(|dt| dt.date()))
            .map_err(|e| {
                format!(
                    "{:?} does not match the format {}: {e}",
                    clip(raw),
                    f.as_str()
                )
            })?,
        None => {
            let iso = time::macros::format_description!("[year]-[month]-[day]");
            Date::parse(t, &iso)
                .or_else(|_| OffsetDateTime::parse(t, &Rfc3339).map(|dt| dt.date()))
                .map_err(|_| format!("{:?} is not a date like 2024-03-01; set format", clip(raw)))?
        }
    };
    Ok(Value::String(format_date(d)))
}

fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn datetime(raw: &str, opts: ConvertOpts<'_>) -> Result<Value, String> {
    let t = raw.trim();
    let dt = match opts.format {
        Some(f) => OffsetDateTime::parse(t, f.get())
            .or_else(|_| PrimitiveDateTime::parse(t, f.get()).map(PrimitiveDateTime::assume_utc))
            .map_err(|e| {
                format!(
                    "{:?} does not match the format {}: {e}",
                    clip(raw),
                    f.as_str()
                )
            })?,
        None => OffsetDateTime::parse(t, &Rfc3339)
            .or_else(|_| OffsetDateTime::parse(t, &Rfc2822))
            .map_err(|_| {
                format!(
                    "{:?} is not an RFC 3339 or RFC 2822 date-time; set format",
                    clip(raw)
                )
            })?,
    };
    Ok(Value::String(rfc3339_utc(dt)))
}

/// RFC 3339 in UTC with a `Z`; the one date-time form records and parameters use.
pub fn rfc3339_utc(dt: OffsetDateTime) -> String {
    let dt = dt.to_offset(UtcOffset::UTC);
    dt.format(&Rfc3339).unwrap_or_else(|_| {
        // Years outside 0..=9999 cannot be written in RFC 3339; say so in the value.
        format!("{:?}", dt)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harvest::source::DateFormat;
    use serde_json::json;

    fn opts(ty: FieldType, decimal: char) -> ConvertOpts<'static> {
        ConvertOpts {
            ty,
            format: None,
            decimal,
        }
    }

    fn base() -> Url {
        Url::parse("http://x.example/a/b.jsp").unwrap()
    }

    #[test]
    fn numbers_as_people_write_them() {
        let n = |s, d| convert(s, opts(FieldType::Number, d), &base());
        assert_eq!(n("€ 1.234,50", ','), Ok(json!(1234.5)));
        assert_eq!(n("1,234.50 USD", '.'), Ok(json!(1234.5)));
        assert_eq!(n("12 500 EUR", '.'), Ok(json!(12500)));
        assert_eq!(n("12\u{a0}500", ','), Ok(json!(12500)));
        assert_eq!(n("-3", '.'), Ok(json!(-3)));
        assert_eq!(n("(42)", '.'), Ok(json!(-42)));
        assert_eq!(n(".5", '.'), Ok(json!(0.5)));
        assert_eq!(n("1.5e3", '.'), Ok(json!(1500.0)));
        assert_eq!(n("12 pages of 30", '.'), Ok(json!(12)));
        assert_eq!(n("99999999999999999999", '.'), Ok(json!(1e20)));
        assert!(n("n/a", '.').is_err());
        assert!(n("", '.').is_err());
        assert!(n(&"9".repeat(400), '.').is_err(), "infinite");
        let i = |s| convert(s, opts(FieldType::Integer, '.'), &base());
        assert_eq!(i("12.0"), Ok(json!(12)));
        assert!(i("12.5").unwrap_err().contains("whole number"));
    }

    #[test]
    fn bools_dates_urls() {
        let c = |s, ty| convert(s, opts(ty, '.'), &base());
        assert_eq!(c("Yes", FieldType::Bool), Ok(json!(true)));
        assert_eq!(c("0", FieldType::Bool), Ok(json!(false)));
        assert!(c("maybe", FieldType::Bool).is_err());
        assert_eq!(c("2024-03-01", FieldType::Date), Ok(json!("2024-03-01")));
        assert_eq!(
            c("2024-03-01T23:30:00-02:00", FieldType::Datetime),
            Ok(json!("2024-03-02T01:30:00Z"))
        );
        assert_eq!(
            c("Fri, 01 Mar 2024 10:00:00 +0100", FieldType::Datetime),
            Ok(json!("2024-03-01T09:00:00Z"))
        );
        assert!(c("01/03/2024", FieldType::Date)
            .unwrap_err()
            .contains("set format"));
        assert_eq!(
            c("../c.jsp?id=1#x", FieldType::Url),
            Ok(json!("http://x.example/c.jsp?id=1"))
        );
        assert!(c("javascript:go()", FieldType::Url).is_err());

        let f = DateFormat::parse("[day]/[month]/[year]").unwrap();
        let o = ConvertOpts {
            ty: FieldType::Date,
            format: Some(&f),
            decimal: '.',
        };
        assert_eq!(convert("01/03/2024", o, &base()), Ok(json!("2024-03-01")));
        assert!(convert("31/02/2024", o, &base()).is_err());
        let f = DateFormat::parse("[day].[month].[year] [hour]:[minute]").unwrap();
        let o = ConvertOpts {
            ty: FieldType::Datetime,
            format: Some(&f),
            decimal: '.',
        };
        assert_eq!(
            convert("01.03.2024 10:05", o, &base()),
            Ok(json!("2024-03-01T10:05:00Z"))
        );
    }
}
