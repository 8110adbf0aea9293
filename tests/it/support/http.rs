//! HTTP requests to a test server: a client with a timeout, the JSON error shape, and
//! [`Api`], one server's base URL with the request chain (method, path, bearer token,
//! JSON body) written once, plus the calls many tests make (tenants, keys, harvest runs).

use std::time::Duration;

use serde_json::{json, Value};

use super::poll::eventually;
use super::server::{Server, ADMIN_TOKEN};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Asserts the response is the JSON error shape and returns (status, code, message).
pub async fn json_error(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.expect("JSON error body");
    let code = v["error"]["code"].as_str().expect("error.code").to_owned();
    let msg = v["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (status, code, msg)
}

/// A small client for one server.
pub struct Api {
    pub base: String,
    pub c: reqwest::Client,
}

impl Api {
    pub fn new(srv: &Server) -> Api {
        Api {
            base: format!("http://{}", srv.addr),
            c: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional bearer token and JSON body, for headers of its own.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.c.request(m, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        rb
    }

    /// Sends the request; panics only if no answer comes.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        self.request(method, path, token, body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Api::send`] with the admin token.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> reqwest::Response {
        self.send(method, path, Some(ADMIN_TOKEN), body).await
    }

    /// GET without a token; the body as text (`/metrics`, say).
    pub async fn text(&self, path: &str) -> String {
        self.send("GET", path, None, None)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET with the admin token; the body as JSON (panics if it is not JSON).
    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin("GET", path, None)
            .await
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"))
    }

    /// The status and the body (as JSON, or as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let r = self.send(method, path, token, body).await;
        let status = r.status().as_u16();
        let text = match r.text().await {
            Ok(t) => t,
            Err(e) => panic!("{method} {path}: body failed after status {status}: {e}"),
        };
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method, path, Some(token), body.as_ref()).await;
        assert!((200..300).contains(&s), "{method} {path} → {s}: {v}");
        v
    }

    /// The `action` of every entry of the audit chain at `path` (GET with `token`).
    pub async fn audit_actions(&self, path: &str, token: &str) -> Vec<String> {
        let v = self.ok("GET", path, token, None).await;
        v["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no entries: {v}"))
            .iter()
            .filter_map(|e| e["action"].as_str().map(str::to_owned))
            .collect()
    }

    /// Creates a tenant with the admin token; `body` is the whole request (`{"id": ...}`).
    pub async fn create_tenant_with(&self, body: Value) {
        let (s, v) = self
            .call("POST", "/v1/tenants", Some(ADMIN_TOKEN), Some(&body))
            .await;
        assert_eq!(s, 201, "create tenant {body}: {v}");
    }

    pub async fn create_tenant(&self, id: &str) {
        self.create_tenant_with(json!({ "id": id })).await;
    }

    /// Creates a key and returns (id, token).
    pub async fn key(&self, tenant: &str, role: &str, extra: Value) -> (String, String) {
        let mut body = json!({"name": format!("{role} key"), "role": role});
        if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                b.insert(k.clone(), v.clone());
            }
        }
        let v = self
            .ok(
                "POST",
                &format!("/v1/tenants/{tenant}/keys"),
                ADMIN_TOKEN,
                Some(body),
            )
            .await;
        (
            v["key"]["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Triggers a run of `tenant`'s `source` (202) and returns the answer (`run_id`, `url`).
    pub async fn start_run(&self, tenant: &str, source: &str) -> Value {
        let path = format!("/v1/tenants/{tenant}/sources/{source}/runs");
        let (s, v) = self.call("POST", &path, Some(ADMIN_TOKEN), None).await;
        assert_eq!(s, 202, "POST {path}: {v}");
        v
    }

    /// Polls the run at `path` (a run's `url`) until it is no longer running.
    pub async fn wait_run(&self, path: &str) -> Value {
        eventually(Duration::from_secs(60), "the run to end", || async {
            let v = self.admin_json(path).await;
            if v["status"] != "running" {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
        .await
    }
}
