//! Helpers for the API tests: a server with a config file, a JWKS endpoint on loopback,
//! ES256/EdDSA JWT signing with ring, and request shortcuts.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

#[path = "../common/mod.rs"]
pub mod common;

#[allow(unused_imports)]
pub use common::{client, json_error, Server, ADMIN_TOKEN};

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "gleaner-api";

/// Starts gleaner with `extra_toml` appended to a config that lifts rate limits.
pub fn start(dir: &Path, extra_toml: &str) -> Server {
    let cfg = dir.join("gleaner-test.toml");
    let data = dir.join("data");
    // `extra_toml` continues the [limits] section until it opens its own.
    let limits = if extra_toml.contains("key_requests_per_second") {
        ""
    } else {
        "key_requests_per_second = 0\ntenant_requests_per_second = 0\n"
    };
    // Tests send many bad credentials from one address on purpose.
    let failures = if extra_toml.contains("auth_failures_per_minute") {
        ""
    } else {
        "auth_failures_per_minute = 0\n"
    };
    std::fs::write(&cfg, format!("[limits]\n{limits}{failures}{extra_toml}\n")).unwrap();
    Server::start(
        &data,
        &["--config", cfg.to_str().unwrap()],
        &[
            ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
            (
                "GLEANER_AUTH__SECRET",
                "test-server-secret-0123456789abcdef",
            ),
        ],
    )
}

/// TOML for one OIDC issuer whose JWKS is at `jwks_url`.
pub fn oidc_toml(jwks_url: &str, min_refetch_secs: u64) -> String {
    format!(
        "[auth]\njwks_min_refetch_secs = {min_refetch_secs}\n[[auth.oidc]]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{jwks_url}\"\nalgorithms = [\"ES256\", \"EdDSA\"]\nleeway_secs = 0\n"
    )
}

/// A JWKS document served on loopback; replace it with [`Jwks::set`].
pub struct Jwks {
    pub url: String,
    doc: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Jwks {
    pub async fn serve(keys: Vec<Value>) -> Jwks {
        let doc = Arc::new(Mutex::new(json!({"keys": keys})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (d, f) = (d.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(d.lock().unwrap().clone())
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        Jwks {
            url: format!("http://{addr}/jwks.json"),
            doc,
            fetches,
        }
    }

    pub fn set(&self, keys: Vec<Value>) {
        *self.doc.lock().unwrap() = json!({"keys": keys});
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A signing key with its JWK.
pub enum Signer {
    Es256 { kid: String, pair: EcdsaKeyPair },
    Ed25519 { kid: String, pair: Ed25519KeyPair },
}

impl Signer {
    pub fn es256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer::Es256 {
            kid: kid.into(),
            pair,
        }
    }

    pub fn ed25519(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Signer::Ed25519 {
            kid: kid.into(),
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Signer::Es256 { kid, pair } => {
                let p = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65]),
                       "kid": kid, "alg": "ES256", "use": "sig"})
            }
            Signer::Ed25519 { kid, pair } => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
                       "kid": kid, "alg": "EdDSA", "use": "sig"})
            }
        }
    }

    fn alg_kid(&self) -> (&'static str, &str) {
        match self {
            Signer::Es256 { kid, .. } => ("ES256", kid),
            Signer::Ed25519 { kid, .. } => ("EdDSA", kid),
        }
    }

    /// Signs `claims` with a header naming this key (or `header` overrides merged in).
    pub fn sign(&self, claims: &Value, header_extra: Value) -> String {
        let (alg, kid) = self.alg_kid();
        let mut header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        if let (Some(h), Some(x)) = (header.as_object_mut(), header_extra.as_object()) {
            for (k, v) in x {
                h.insert(k.clone(), v.clone());
            }
        }
        let msg = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = match self {
            Signer::Es256 { pair, .. } => pair
                .sign(&SystemRandom::new(), msg.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Ed25519 { pair, .. } => pair.sign(msg.as_bytes()).as_ref().to_vec(),
        };
        format!("{msg}.{}", b64(&sig))
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard claims for `tenant` and `role`, valid for an hour.
pub fn claims(tenant: &str, role: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{role}"), "exp": now_secs() + 3600,
           "nbf": now_secs() - 10, "iat": now_secs(), "gleaner_tenant": tenant, "gleaner_role": role})
}

/// A small client for one server and one bearer token.
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

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.c.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let r = rb.send().await.unwrap();
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

    pub async fn create_tenant(&self, id: &str) {
        self.ok("POST", "/v1/tenants", ADMIN_TOKEN, Some(json!({"id": id})))
            .await;
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
}
