//! Definition parsing and validation: every kind parses from its example, and every
//! refused definition names the field to fix.

use super::*;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/harvest/sources"
);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// The field paths of a refused TOML definition.
fn toml_errors(text: &str) -> Vec<String> {
    match SourceDef::parse_toml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput, "{e}");
            e.fields().iter().map(ToString::to_string).collect()
        }
    }
}

const HTML_MIN: &str = r#"
id = "reg"
kind = "html"
start_urls = ["https://reg.example/list"]
[extract]
record = "tr"
key = { field = "no" }
fields.no = { selector = "td" }
"#;

#[test]
fn every_example_parses_validates_and_round_trips() {
    for (name, json) in [
        ("registry.toml", false),
        ("api.json", true),
        ("news.toml", false),
        ("companies-csv.toml", false),
        ("sitemap.toml", false),
        ("push.toml", false),
    ] {
        let text = fixture(name);
        let def = if json {
            SourceDef::parse_json(text.as_bytes())
        } else {
            SourceDef::parse_toml(&text)
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        def.validate_untrusted()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // JSON round trip.
        let v = def.to_value();
        let back = SourceDef::parse_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, def, "{name}");
        // TOML round trip.
        let t = toml::to_string(&def).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(SourceDef::parse_toml(&t).unwrap(), def, "{name}:\n{t}");
    }
}

#[test]
fn registry_example_has_the_expected_shape() {
    let def = SourceDef::parse_toml(&fixture("registry.toml")).unwrap();
    assert_eq!(def.id().as_str(), "company-registry");
    assert_eq!(def.kind(), "html");
    let SourceSpec::Html(h) = &def.spec else {
        panic!()
    };
    assert_eq!(h.extract.key, KeySpec::Field("reg_no".into()));
    assert_eq!(h.extract.fields["capital"].ty, FieldType::Number);
    assert_eq!(h.extract.fields["capital"].decimal, Some(','));
    assert_eq!(h.extract.detail.as_ref().unwrap().fields.len(), 3);
    assert_eq!(def.common.politeness.min_delay.unwrap().secs(), 2);
    assert!(def.common.politeness.obey_robots);
    assert_eq!(
        def.common.schedule.as_ref().unwrap().to_string(),
        "0 3 * * *"
    );
}

#[test]
fn bad_selector_names_its_field() {
    let text = HTML_MIN.to_owned() + "fields.price = { selector = \"div[\" }\n";
    let errs = toml_errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("extract.fields.price.selector: invalid CSS selector \"div[\""),
        "{}",
        errs[0]
    );
}

#[test]
fn deserialization_errors_name_their_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "start_urls = [\"https://reg.example/list\"]",
            "start_urls = [\"ftp://x/\"]",
            "start_urls[0]: URL \"ftp://x/\" must use http or https",
        ),
        (
            "id = \"reg\"",
            "id = \"Reg\"",
            "id: source id \"Reg\" contains 'R'",
        ),
        (
            "id = \"reg\"",
            "id = \"reg\"\nschedule = \"every day\"",
            "schedule: invalid schedule",
        ),
        (
            "id = \"reg\"",
            "id = \"reg\"\nfreshness = \"2 days\"",
            "freshness: invalid duration",
        ),
        (
            "record = \"tr\"",
            "record = \"tr\"\nrecods = \"x\"",
            "extract.recods: unknown field `recods`, expected one of `record`",
        ),
        (
            "fields.no = { selector = \"td\" }",
            "fields.no = { selector = \"td\", regex = \"(\" }",
            "extract.fields.no.regex: invalid regex",
        ),
        (
            "fields.no = { selector = \"td\" }",
            "fields.no = { selector = \"td\", type = \"money\" }",
            "extract.fields.no.type: unknown variant `money`",
        ),
        (
            "fields.no = { selector = \"td\" }",
            "fields.no = { selector = \"td\", type = \"date\", format = \"[dy]\" }",
            "extract.fields.no.format: invalid date format",
        ),
        (
            "kind = \"html\"",
            "kind = \"xml\"",
            "kind: unknown kind \"xml\"",
        ),
        (
            "id = \"reg\"",
            "id = \"reg\"\npoliteness = { obey_robot = false }",
            "politeness.obey_robot: unknown field `obey_robot`",
        ),
    ];
    for (from, to, expected) in cases {
        let text = HTML_MIN.replacen(from, to, 1);
        let errs = toml_errors(&text);
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "expected {expected:?} in {errs:?}"
        );
    }
}

#[test]
fn semantic_errors_are_all_reported_with_fields() {
    let text = r#"
id = "reg"
kind = "html"
schedule = "0 3 * * *"
freshness = "10s"
start_urls = ["https://reg.example/list"]
auth = { type = "basic", username = "a:b", password = "secret:pw" }
politeness = { per_host_concurrency = 100, requests_per_minute = 10, requests_per_day = 5 }
scope = { prefix = "https://other.example/", max_depth = 99 }
next = {}
[extract]
record = "tr"
key = { field = "missing" }
fields.no = { selector = "td", attr = "href", html = true }
fields.when = { selector = "td", format = "[year]" }
fields.amount = { selector = "td", decimal = ";", type = "number" }
detail = { link = "a", fields = { no = { selector = "b" } } }
"#;
    let errs = toml_errors(text);
    let fields: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    for f in [
        "freshness",
        "auth.username",
        "politeness.per_host_concurrency",
        "politeness.requests_per_minute",
        "scope.max_depth",
        "start_urls[0]",
        "next",
        "extract.key",
        "extract.fields.no.html",
        "extract.fields.when.format",
        "extract.fields.amount.decimal",
        "extract.detail.fields.no",
    ] {
        assert!(fields.contains(&f), "{f} missing from {errs:#?}");
    }
}

#[test]
fn json_source_rules() {
    let base = serde_json::json!({
        "id": "api", "kind": "json", "url": "https://api.example/v1/items",
        "records": "$.items[*]", "key": {"field": "id"}
    });
    let with = |patch: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        SourceDef::parse_json(&serde_json::to_vec(&v).unwrap())
    };
    assert!(with(serde_json::json!({})).is_ok());
    let err = |patch| with(patch).unwrap_err().to_string();
    assert!(
        err(serde_json::json!({"records": "items[*]"})).starts_with("records: invalid JSONPath")
    );
    assert!(err(serde_json::json!({"window": {}})).starts_with("window: no params value"));
    assert!(err(serde_json::json!({"params": {"since": "{start}"}})).starts_with("params: {start}"));
    assert!(err(serde_json::json!({"key": "url"}))
        .starts_with("key: this source kind has no record URL"));
    assert!(err(
        serde_json::json!({"pagination": {"type": "cursor", "path": "$.next", "param": ""}})
    )
    .starts_with("pagination.param"));
    assert!(err(serde_json::json!({"pagination": {"type": "page", "param": "page"}, "params": {"page": "1"}}))
        .contains("\"page\" is set by pagination"));
    assert!(err(serde_json::json!({"pagination": {"type": "scroll"}}))
        .starts_with("pagination.type: unknown variant `scroll`"));
    assert!(err(serde_json::json!({"url": "https://api.example/{start}"})).contains("put {start}"));
}

#[test]
fn incremental_rules() {
    let with = |inc: serde_json::Value, extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "id": "api", "kind": "json", "url": "https://api.example/v1/items",
            "records": "$.items[*]", "key": {"field": "id"}, "incremental": inc,
            "pagination": {"type": "cursor", "path": "$.next", "param": "next"}
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        SourceDef::parse_json(&serde_json::to_vec(&v).unwrap()).map_err(|e| e.to_string())
    };
    let none = serde_json::json!({});
    let field = serde_json::json!({"type": "max_field", "field": "updated_at", "param": "since", "lookback": "400d"});
    let def = with(field.clone(), none.clone()).unwrap();
    // It reads back the same (durations print in the unit they were written in).
    assert_eq!(def.to_value()["incremental"]["lookback"], "400d");
    assert_eq!(SourceDef::from_value(def.to_value()).unwrap(), def);
    assert!(
        with(
            serde_json::json!({"type": "token", "path": "$.sync", "param": "next"}),
            none.clone()
        )
        .is_ok(),
        "a token may resume the cursor pagination's own parameter"
    );
    let err = |inc, extra| with(inc, extra).unwrap_err();
    assert!(err(
        serde_json::json!({"type": "max_field", "field": "n", "param": "next"}),
        none.clone()
    )
    .starts_with("incremental.param: \"next\" is set by pagination"));
    assert!(err(serde_json::json!({"type": "max_field", "field": "n", "param": "s", "format": "number", "lookback": "1m"}), none.clone())
        .starts_with("incremental.lookback: a lookback needs a time format"));
    assert!(
        err(field.clone(), serde_json::json!({"params": {"since": "x"}}))
            .contains("\"since\" is set by incremental")
    );
    assert!(err(
        field.clone(),
        serde_json::json!({"params": {"from": "{start}"}, "window": {}})
    )
    .starts_with("incremental: use either window"));
    assert!(err(
        serde_json::json!({"type": "max_field", "field": "n", "param": "s", "since": "x"}),
        none
    )
    .contains("unknown field `since`"));
}

#[test]
fn push_and_untrusted_secret_rules() {
    let push = "id = \"p\"\nkind = \"push\"\nkey = { field = \"id\" }\n";
    assert!(SourceDef::parse_toml(push).is_ok());
    let errs = toml_errors(&(push.to_owned() + "schedule = \"5m\"\nmax_body_bytes = 0\n"));
    assert!(
        errs.iter().any(|e| e.starts_with("schedule: push sources")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("max_body_bytes")),
        "{errs:?}"
    );

    let env = push.to_owned() + "signature = { secret = \"env:HMAC\" }\n";
    let def = SourceDef::parse_toml(&env).unwrap();
    let e = def.validate_untrusted().unwrap_err();
    assert_eq!(e.fields()[0].field, "signature.secret");

    let bearer = HTML_MIN.replace(
        "id = \"reg\"",
        "id = \"reg\"\nauth = { type = \"bearer\", token = \"file:/etc/token\" }",
    );
    let def = SourceDef::parse_toml(&bearer).unwrap();
    assert_eq!(
        def.validate_untrusted().unwrap_err().fields()[0].field,
        "auth.token"
    );
    let inline = HTML_MIN.replace(
        "id = \"reg\"",
        "id = \"reg\"\nauth = { type = \"bearer\", token = \"hunter2\" }",
    );
    assert!(toml_errors(&inline)[0].contains("is not a secret reference"));
    let http = HTML_MIN.replace(
        "id = \"reg\"",
        "id = \"reg\"\nauth = { type = \"oauth2_client_credentials\", token_url = \"http://auth.example/t\", client_id = \"c\", client_secret = \"secret:s\" }",
    );
    assert!(toml_errors(&http)[0].starts_with("auth.token_url: the token endpoint must use https"));
}

#[test]
fn csv_rules() {
    let csv =
        "id = \"c\"\nkind = \"csv\"\nurl = \"https://x.example/a.csv\"\nkey = { field = \"id\" }\n";
    assert!(SourceDef::parse_toml(csv).is_ok());
    let errs = toml_errors(
        &(csv.to_owned() + "encoding = \"klingon\"\ndelimiter = \"\\n\"\ncolumns = [\"a\"]\n"),
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert!(
        fields.contains(&"encoding") && fields.contains(&"delimiter") && fields.contains(&"key"),
        "{errs:?}"
    );
}

#[test]
fn syntax_and_size_errors() {
    let e = SourceDef::parse_toml("id = \n").unwrap_err();
    assert!(
        matches!(e, DefinitionError::Syntax { format: "TOML", .. })
            && e.to_string().contains("line 1"),
        "{e}"
    );
    let e = SourceDef::parse_json(b"{\"id\": ").unwrap_err();
    assert!(matches!(e, DefinitionError::Syntax { format: "JSON", .. }));
    let big = vec![b' '; crate::harvest::limits::MAX_DEFINITION_BYTES + 1];
    assert_eq!(
        SourceDef::parse_json(&big).unwrap_err().kind(),
        crate::error::ErrorKind::TooLarge
    );
    let e = SourceDef::parse_json(b"[1]").unwrap_err();
    assert!(e.to_string().contains("must be an object"));
    let e = SourceDef::parse_json(b"{\"id\": \"a\"}").unwrap_err();
    assert!(e.to_string().starts_with("kind: missing"));
}

#[test]
fn common_keys_match_the_common_struct() {
    let c = Common {
        id: SourceId::parse("a").unwrap(),
        schedule: Some(Schedule::parse("1h").unwrap()),
        freshness: Some(HumanDuration::parse("1h").unwrap()),
        auth: Some(Auth::Bearer {
            token: SecretRef::parse("secret:t").unwrap(),
        }),
        connection: Some(ConnectionName::parse("c").unwrap()),
        politeness: Politeness::default(),
        history: History::default(),
        guard: Guard::default(),
    };
    let v = serde_json::to_value(&c).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    let mut expected = COMMON_KEYS.map(String::from).to_vec();
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn guard_bounds_are_validated_and_unknown_guard_keys_refused() {
    let base = "id = \"reg\"\nkind = \"html\"\nstart_urls = [\"https://reg.example/list\"]\n\
                [extract]\nrecord = \"tr\"\nkey = { field = \"k\" }\nfields.k = { selector = \"td\" }\n";
    let def = SourceDef::parse_toml(base).unwrap();
    assert_eq!(def.common.guard, Guard::default());
    assert!(def.common.guard.enabled, "on by default");
    let text = format!(
        "guard = {{ window = 60, min_runs = 1, max_removed_ratio = 0.0, max_drop_ratio = 1.5, max_deviations = -1.0 }}\n{base}"
    );
    let errs = toml_errors(&text);
    let fields: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    for f in [
        "guard.window",
        "guard.min_runs",
        "guard.max_removed_ratio",
        "guard.max_drop_ratio",
        "guard.max_deviations",
    ] {
        assert!(fields.contains(&f), "{f} missing from {errs:#?}");
    }
    let errs = toml_errors(&format!("guard = {{ min_runs = 6 }}\n{base}"));
    assert!(errs[0].contains("must not exceed window (5)"), "{errs:?}");
    let errs = toml_errors(&format!("guard = {{ max_removed = 0.3 }}\n{base}"));
    assert!(
        errs[0].starts_with("guard.max_removed: unknown field"),
        "{errs:?}"
    );
}
