//! OIDC bearer tokens against a JWKS endpoint served by the test on loopback: ES256 and
//! EdDSA, key rotation at the issuer, rate-limited refetch for unknown key ids, and the
//! classic attacks (alg none, HS256 with the public key as secret, jku/jwk headers, wrong
//! issuer, not-yet-valid, missing claims).

use std::time::{Duration, Instant};

use crate::support::{self, *};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

async fn status(api: &Api, tok: &str) -> u16 {
    api.call("GET", "/v1/tenants/o1/records", Some(tok), None)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_attacks() {
    let k1 = Signer::es256("k1");
    let k2 = Signer::ed25519("k2");
    let jwks = Jwks::serve(vec![k1.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), &oidc_toml(&jwks.url, 1));
    let api = Api::new(&srv);
    api.create_tenant("o1").await;

    let t1 = k1.sign(&claims("o1", "reader"), json!({}));
    assert_eq!(status(&api, &t1).await, 200);
    assert_eq!(jwks.fetches(), 1);
    // Cached: more requests, no more fetches.
    for _ in 0..5 {
        assert_eq!(status(&api, &t1).await, 200);
    }
    assert_eq!(jwks.fetches(), 1);
    // A reader JWT is a reader: no key management.
    let (s, _) = api
        .call("GET", "/v1/tenants/o1/keys", Some(&t1), None)
        .await;
    assert_eq!(s, 403);

    // The issuer rotates to k2 (EdDSA). Tokens signed with k2 name an unknown kid: we
    // refetch, at most once per jwks_min_refetch_secs, and then accept them.
    jwks.set(vec![k1.jwk(), k2.jwk()]);
    let t2 = k2.sign(&claims("o1", "tenant-admin"), json!({}));
    eventually(
        Duration::from_secs(10),
        "the rotated key to be accepted",
        || async {
            match status(&api, &t2).await {
                200 => Ok(()),
                s => Err(s.to_string()),
            }
        },
    )
    .await;
    assert_eq!(
        api.call("GET", "/v1/tenants/o1/keys", Some(&t2), None)
            .await
            .0,
        200
    );
    let before = jwks.fetches();
    // A burst of random kids cannot make us hammer the issuer.
    let started = Instant::now();
    for i in 0..40 {
        let t = k1.sign(
            &claims("o1", "reader"),
            json!({"kid": format!("random-{i}")}),
        );
        assert_eq!(status(&api, &t).await, 401);
    }
    let allowed = started.elapsed().as_secs() as usize + 2;
    assert!(
        jwks.fetches() - before <= allowed,
        "{} fetches in {:?}",
        jwks.fetches() - before,
        started.elapsed()
    );

    // Attacks, each refused with 401.
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let c = claims("o1", "tenant-admin");
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&c)
    );
    // HS256 signed with the public key's JWK text as the HMAC secret (key confusion).
    let hs = {
        let msg = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "k1"})),
            b64(&c)
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k1.jwk().to_string().as_bytes());
        let sig = ring::hmac::sign(&key, msg.as_bytes());
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    // An attacker's own key advertised through jku and an embedded jwk.
    let evil = Signer::es256("k1");
    let evil_jwks = Jwks::serve(vec![evil.jwk()]).await;
    let jku = evil.sign(&c, json!({"jku": evil_jwks.url}));
    let jwk = evil.sign(&c, json!({"jwk": evil.jwk()}));
    let mut wrong_iss = c.clone();
    wrong_iss["iss"] = json!("https://evil.test/");
    let wrong_iss = k1.sign(&wrong_iss, json!({}));
    let mut nbf = c.clone();
    nbf["nbf"] = json!(now_secs() + 3600);
    let nbf = k1.sign(&nbf, json!({}));
    let mut no_tenant = c.clone();
    no_tenant.as_object_mut().unwrap().remove("gleaner_tenant");
    let no_tenant = k1.sign(&no_tenant, json!({}));
    let mut bad_role = c.clone();
    bad_role["gleaner_role"] = json!("superuser");
    let bad_role = k1.sign(&bad_role, json!({}));
    let mut no_exp = c.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let no_exp = k1.sign(&no_exp, json!({}));
    // Right key, wrong algorithm family claimed in the header.
    let alg_swap = k1.sign(&c, json!({"alg": "EdDSA"}));
    let mut tampered = k1.sign(&c, json!({})).into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (name, t) in [
        ("alg none", none),
        ("HS256 with the public key", hs),
        ("jku header", jku),
        ("embedded jwk", jwk),
        ("wrong issuer", wrong_iss),
        ("not yet valid", nbf),
        ("no tenant claim", no_tenant),
        ("unknown role", bad_role),
        ("no exp", no_exp),
        ("alg swapped", alg_swap),
        ("tampered", tampered),
    ] {
        let (s, e) = api
            .call("GET", "/v1/tenants/o1/records", Some(&t), None)
            .await;
        assert_eq!(s, 401, "{name}: {e}");
    }
    assert_eq!(evil_jwks.fetches(), 0, "a jku header made us fetch");
    // The attempts were audited in the tenant's chain (throttled per address).
    let v = api
        .ok("GET", "/v1/tenants/o1/audit?limit=1000", ADMIN_TOKEN, None)
        .await;
    assert!(v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "auth.failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_issuer_is_a_retryable_error_not_a_crash() {
    let k1 = Signer::es256("k1");
    // A port nobody listens on (free, and outside the range other sockets are given).
    let addr = format!("127.0.0.1:{}", support::free_port());
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        &oidc_toml(&format!("http://{addr}/jwks.json"), 1),
    );
    let api = Api::new(&srv);
    api.create_tenant("o2").await;
    let t = k1.sign(&claims("o2", "reader"), json!({}));
    let (s, e) = api
        .call("GET", "/v1/tenants/o2/records", Some(&t), None)
        .await;
    assert_eq!(s, 503, "{e}");
    assert_eq!(api.call("GET", "/readyz", None, None).await.0, 200);
}
