//! OIDC for the API tests: an issuer's configuration, a JWKS endpoint on loopback, and
//! ES256/EdDSA JWT signing with ring.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "gleaner-api";

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
        let addr = super::sites::serve(app).await;
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
