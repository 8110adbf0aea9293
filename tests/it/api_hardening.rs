//! Hostile-input findings of issue 19 (3, 4, 6) against the real binary: request ids, the
//! JSON error format on every path (parser rejections written by hand over raw TCP),
//! CORS methods, duplicate credentials, unauthenticated failure limits, rate-limit header
//! agreement, invalid UTF-8 in queries and CSV formula neutralisation.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{self, start, Api, ADMIN_TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response read off a raw socket.
struct Raw {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Writes `bytes` as they are and reads until the server closes the connection.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Raw {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection after a rejected request")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, _) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let head_len = head.len() + 4;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Raw {
        status,
        headers,
        body: out[head_len..].to_vec(),
    }
}

fn assert_security_headers(what: &str, h: &HashMap<String, String>) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(
            h.get(name).map(String::as_str),
            Some(value),
            "{what}: header {name} in {h:?}"
        );
    }
}

fn is_token(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

#[tokio::test]
async fn request_ids_are_bounded_tokens_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "[log]\nlevel = \"debug\"\n");
    let api = Api::new(&srv);
    let ok = "req-42.a_b:C";
    let r = api
        .c
        .get(srv.url("/healthz"))
        .header("x-request-id", ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], ok);

    let long = "a".repeat(10_000);
    let too_long = "b".repeat(129);
    let bad: Vec<&[u8]> = vec![
        b"<script>alert(1)</script>",
        b"abc%0d%0aSet-Cookie: x=1",
        long.as_bytes(),
        too_long.as_bytes(),
        b"two words",
        b"caf\xc3\xa9",
        b"",
    ];
    for sent in &bad {
        let r = api
            .c
            .get(srv.url("/healthz"))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(sent).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(
            got.as_bytes(),
            *sent,
            "echoed {:?}",
            String::from_utf8_lossy(sent)
        );
        assert!(is_token(&got), "minted id {got:?} is a bounded token");
    }
    // The span's request_id is the minted one: the raw values never reach the log.
    let log = srv.drain_log().join("\n");
    assert!(log.contains(ok), "the accepted id is logged");
    assert!(!log.contains("<script>"), "{log}");
    assert!(
        !log.contains(&"a".repeat(200)),
        "the 10 KB id is not logged"
    );
    assert!(!log.contains("Set-Cookie"), "{log}");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn parser_rejections_and_oversized_bodies_are_json_errors_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "[http]\nmax_body_bytes = 4096\n");
    let addr = srv.addr;
    // A head of exactly the server's 64 KiB read buffer, never finished: the server has
    // read all of it when it answers, so closing cannot reset the connection under the
    // answer.
    let filled = |prefix: &str| {
        let mut b = prefix.as_bytes().to_vec();
        b.resize(64 * 1024, b'a');
        b
    };
    let oversized = format!(
        "POST /v1/tenants/acme/sources/hook/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{}",
        "x".repeat(100_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "duplicate Content-Length",
            b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "bare CR in a header",
            b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "bad request line",
            b"GET /healthz HTTP/1.1 trailing\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "unknown HTTP version",
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_input",
        ),
        (
            "huge header",
            filled("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "),
            431,
            "head_too_large",
        ),
        ("huge URL", filled("GET /healthz?x="), 431, "head_too_large"),
        (
            "oversized push body",
            oversized.into_bytes(),
            413,
            "too_large",
        ),
    ];
    for (what, bytes, status, code) in cases {
        let r = raw(addr, &bytes).await;
        assert_eq!(r.status, status, "{what}");
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
            "{what}: {v}"
        );
        assert_security_headers(what, &r.headers);
        assert_eq!(
            r.headers.get("content-length").map(String::as_str),
            Some(r.body.len().to_string().as_str()),
            "{what}"
        );
    }
    // A well-formed request on a kept-alive connection is untouched by the rewriting.
    let r = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(body.matches("HTTP/1.1 200").count(), 1, "{body}");
    // A good request followed by a broken one on the same connection: the first answer
    // stays as it was, the second is the JSON error.
    let r = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    let rest = String::from_utf8_lossy(&r.body).into_owned();
    let (_, second) = rest
        .split_once("HTTP/1.1 400 Bad Request\r\n")
        .unwrap_or_else(|| panic!("second answer is a 400: {rest:?}"));
    assert!(
        second.contains("x-content-type-options: nosniff"),
        "{second}"
    );
    assert!(second.contains("\"invalid_input\""), "{second}");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn cors_preflight_allows_every_method_the_routes_use() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "[http]\ncors_allowed_origins = [\"https://app.example\"]\n",
    );
    let api = Api::new(&srv);
    let mut methods: Vec<String> = gleaner::http::route_table()
        .into_iter()
        .map(|r| r.method.to_string())
        .collect();
    methods.sort();
    methods.dedup();
    assert!(methods.contains(&"PUT".to_owned()));
    for m in &methods {
        let r = api
            .c
            .request(
                reqwest::Method::OPTIONS,
                srv.url("/v1/tenants/acme/sources/s"),
            )
            .header("origin", "https://app.example")
            .header("access-control-request-method", m.as_str())
            .send()
            .await
            .unwrap();
        let allowed = r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            allowed.split(',').any(|a| a.trim() == m),
            "{m} missing from {allowed}"
        );
    }
    assert!(srv.stop().success());
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let (_, reader) = api.key("acme", "reader", json!({})).await;
    for path in ["/v1/tenants", "/v1/tenants/acme/records"] {
        let r = api
            .c
            .get(srv.url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("authorization", format!("Bearer {reader}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let (status, code, msg) = support::json_error(r).await;
        assert_eq!((status, code.as_str()), (400, "invalid_input"), "{path}");
        assert!(msg.contains("Authorization"), "{msg}");
    }
    // Also on the push route, whose credential is optional.
    let r = api
        .c
        .post(srv.url("/v1/tenants/acme/sources/hook/push"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .json(&json!({"records": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(support::json_error(r).await.0, 400);
    assert!(srv.stop().success());
}

#[tokio::test]
async fn unauthenticated_failures_are_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "auth_failures_per_minute = 2\n");
    let api = Api::new(&srv);
    for _ in 0..2 {
        let (s, _) = api
            .call("GET", "/v1/tenants", Some("wrong-token-wrong-token"), None)
            .await;
        assert_eq!(s, 401);
    }
    let r = api
        .c
        .get(srv.url("/v1/tenants"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let (status, code, _) = support::json_error(r).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-reset"], h["retry-after"]);
    // While the address is over its budget, even a good credential is not tried: the
    // limit cannot be used as a guessing oracle.
    let (s, v) = api
        .call("GET", "/v1/tenants", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 429, "{v}");
    // Without credentials at all, the same.
    let (s, _) = api.call("GET", "/v1/tenants", None, None).await;
    assert_eq!(s, 429);
    // Public routes are not affected.
    let (s, _) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    assert!(srv.stop().success());
}

#[tokio::test]
async fn a_429s_retry_after_equals_its_ratelimit_reset() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "key_requests_per_second = 1\nkey_burst = 3\nauth_failures_per_minute = 0\n",
    );
    let api = Api::new(&srv);
    let mut limited = None;
    for _ in 0..10 {
        let r = api
            .c
            .get(srv.url("/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r.headers().clone());
            break;
        }
    }
    let h = limited.expect("the fourth request within a second is limited");
    assert_eq!(
        h["retry-after"], h["ratelimit-reset"],
        "Retry-After and RateLimit-Reset in {h:?}"
    );
    assert_eq!(h["ratelimit-remaining"], "0");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn invalid_utf8_in_any_query_parameter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    for path in [
        "/v1/tenants/acme/records?q=%ff%fe",
        "/v1/tenants/acme/records?source=%c3%28",
        "/v1/tenants/acme/export?q=ok&key_prefix=%80",
        "/v1/tenants?%ff=1",
        "/v1/tenants/acme/audit?x=%ed%a0%80",
        "/healthz?x=%ff",
    ] {
        let (s, v) = api.call("GET", path, Some(ADMIN_TOKEN), None).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["error"]["code"], "invalid_input", "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("UTF-8"),
            "{path}: {v}"
        );
    }
    // Valid percent-encoded UTF-8 still works.
    let (s, v) = api
        .call(
            "GET",
            "/v1/tenants/acme/records?q=caf%C3%A9+bar",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(srv.stop().success());
}

#[tokio::test]
async fn csv_export_neutralises_formula_cells_unless_asked_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let fields = json!({
        "eq": "=HYPERLINK(\"http://evil.example\",\"x\")",
        "plus": "+1+2",
        "minus": "-3+4",
        "at": "@SUM(A1)",
        "tab": "\tcmd",
        "cr": "\rcmd",
        "plain": "hello",
        "num": -5,
    });
    api.ok(
        "POST",
        "/v1/tenants/acme/records",
        ADMIN_TOKEN,
        Some(json!({"records": [{"source": "src", "key": "=1+1", "fields": fields}]})),
    )
    .await;
    let export = |extra: &'static str| {
        let url = srv.url(&format!(
            "/v1/tenants/acme/export?format=csv&fields=eq,plus,minus,at,tab,cr,plain,num{extra}"
        ));
        let c = api.c.clone();
        async move {
            let r = c.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let safe = export("").await;
    let row = safe.split("\r\n").nth(1).unwrap().to_owned();
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[2], "'=1+1", "{row}");
    let tail = "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",'+1+2,'-3+4,'@SUM(A1),'\tcmd,\"'\rcmd\",hello,-5";
    assert!(row.ends_with(tail), "{row:?}");
    let raw = export("&neutralize_formulas=false").await;
    let row = raw.split("\r\n").nth(1).unwrap();
    assert!(row.contains(",=1+1,"), "{row}");
    assert!(row.contains(",+1+2,-3+4,@SUM(A1),\tcmd,"), "{row}");
    assert!(srv.stop().success());
}
