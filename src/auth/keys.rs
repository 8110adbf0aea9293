//! API key tokens and their keyed hashes.
//!
//! A token reads `glk_<id>_<secret>`: `id` is 16 lowercase hex characters (public, the row's
//! primary key, safe to log), `secret` is 32 random bytes in unpadded base64url. The store
//! keeps only `HMAC-SHA256(K, secret)` where K is derived from the server secret, so a copy
//! of control.db alone cannot be used to authenticate, and a keyed hash is enough for
//! 256-bit random secrets (a slow password hash would add latency to every request and no
//! security). Comparison goes through `ring::hmac::verify`, which is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

pub const PREFIX: &str = "glk_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;

/// A freshly generated key: show `token` once, store `id` and the hash of the secret.
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub secret_hash: Vec<u8>,
}

/// Computes and checks keyed hashes of key secrets.
#[derive(Clone)]
pub struct KeyHasher {
    key: hmac::Key,
}

impl KeyHasher {
    pub fn new(derived: &[u8; 32]) -> Self {
        KeyHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived),
        }
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        hmac::sign(&self.key, secret.as_bytes()).as_ref().to_vec()
    }

    /// Constant-time check of `secret` against a stored hash.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        hmac::verify(&self.key, secret.as_bytes(), stored).is_ok()
    }

    pub fn generate(&self) -> Result<NewToken, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        let mut id = [0u8; ID_LEN / 2];
        let mut secret = [0u8; 32];
        rng.fill(&mut id)?;
        rng.fill(&mut secret)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let secret = URL_SAFE_NO_PAD.encode(secret);
        Ok(NewToken {
            token: format!("{PREFIX}{id}_{secret}"),
            secret_hash: self.hash(&secret),
            id,
        })
    }
}

/// Splits a presented token into (id, secret), or `None` if it is not shaped like a key.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN || !rest.is_char_boundary(ID_LEN) {
        return None;
    }
    let (id, tail) = rest.split_at(ID_LEN);
    let secret = tail.strip_prefix('_')?;
    let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Whether `s` is shaped like a key id (for path parameters).
pub fn valid_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_verify() {
        let h = KeyHasher::new(&[1; 32]);
        let t = h.generate().unwrap();
        let (id, secret) = parse(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(valid_id(id));
        assert!(h.verify(secret, &t.secret_hash));
        assert!(!KeyHasher::new(&[2; 32]).verify(secret, &t.secret_hash));
        let mut wrong = secret.to_owned();
        wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
        assert!(!h.verify(&wrong, &t.secret_hash));
        assert_eq!(parse("glk_short"), None);
        assert_eq!(parse(&t.token.replace("glk_", "xxx_")), None);
        assert_eq!(parse(&format!("{}é", &t.token[..t.token.len() - 2])), None);
        assert!(!valid_id("../../etc"));
    }
}
