//! The memory of recently received webhook events, to refuse replays.
//!
//! Bounded two ways: an entry lives only as long as a replay of it could still pass the
//! clock check (twice the tolerance, or the source's `replay_window` when nothing signed
//! is timed), and each source keeps at most `replay_capacity` live entries, with at most
//! [`MAX_SCOPES`] sources tracked. When a source is full of live entries a new event is
//! refused ("retry later") rather than an old one forgotten: forgetting would let that one
//! be replayed, and the provider's retry succeeds once entries expire.
//!
//! Keys are blake3 hashes, so the memory holds no event contents. In memory only: after a
//! restart a request still within its time window could be replayed once.

use std::collections::{HashMap, VecDeque};

/// Most sources with a replay memory at once.
pub const MAX_SCOPES: usize = 4096;

pub type ReplayKey = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// One of the keys was seen and has not expired.
    Seen,
    /// The source (or the store) holds as many live entries as it may.
    Full,
}

#[derive(Debug, Default)]
struct Log {
    live: HashMap<ReplayKey, i64>,
    /// Keys in the order admitted; since each source has one window, that is also the
    /// order they expire in. Entries whose key was forgotten are skipped when popped.
    order: VecDeque<(ReplayKey, i64)>,
}

impl Log {
    fn purge(&mut self, now_ms: i64) {
        while let Some(&(k, exp)) = self.order.front() {
            if exp > now_ms {
                break;
            }
            self.order.pop_front();
            if self.live.get(&k) == Some(&exp) {
                self.live.remove(&k);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct ReplayStore {
    scopes: HashMap<String, Log>,
}

/// The keys of one verified event: its digest, and its event id when it has one.
pub fn keys(scope: &str, mac: &[u8; 32], event_id: Option<&str>) -> Vec<ReplayKey> {
    let key = |kind: &str, v: &[u8]| {
        let mut h = blake3::Hasher::new();
        for part in [scope.as_bytes(), kind.as_bytes(), v] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        *h.finalize().as_bytes()
    };
    let mut out = vec![key("mac", mac)];
    if let Some(id) = event_id {
        out.push(key("id", id.as_bytes()));
    }
    out
}

impl ReplayStore {
    /// Remembers `keys` for `window_ms`, unless one of them is already remembered.
    pub fn admit(
        &mut self,
        scope: &str,
        keys: &[ReplayKey],
        now_ms: i64,
        window_ms: i64,
        capacity: u32,
    ) -> Result<(), Refused> {
        if !self.scopes.contains_key(scope) && self.scopes.len() >= MAX_SCOPES {
            self.scopes.retain(|_, l| {
                l.purge(now_ms);
                !l.live.is_empty()
            });
            if self.scopes.len() >= MAX_SCOPES {
                return Err(Refused::Full);
            }
        }
        let log = self.scopes.entry(scope.to_owned()).or_default();
        log.purge(now_ms);
        if keys.iter().any(|k| log.live.contains_key(k)) {
            return Err(Refused::Seen);
        }
        if log.live.len() + keys.len() > capacity as usize {
            return Err(Refused::Full);
        }
        let exp = now_ms.saturating_add(window_ms.max(1));
        for k in keys {
            log.live.insert(*k, exp);
            log.order.push_back((*k, exp));
        }
        // Forgotten keys leave their place in `order`; compact before it outgrows `live`.
        if log.order.len() > 2 * (capacity as usize).max(keys.len()) {
            let live = &log.live;
            let mut kept = std::collections::HashSet::new();
            log.order
                .retain(|(k, e)| live.get(k) == Some(e) && kept.insert(*k));
        }
        Ok(())
    }

    /// Forgets `keys`, so a provider's retry of an event whose handling failed is taken.
    pub fn forget(&mut self, scope: &str, keys: &[ReplayKey]) {
        if let Some(log) = self.scopes.get_mut(scope) {
            for k in keys {
                log.live.remove(k);
            }
        }
    }

    #[cfg(test)]
    fn len(&self, scope: &str) -> (usize, usize) {
        self.scopes
            .get(scope)
            .map_or((0, 0), |l| (l.live.len(), l.order.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_the_window_ends() {
        let mut s = ReplayStore::default();
        let a = keys("t/hook", &[1; 32], Some("evt_1"));
        // Same event id under a new signature (a provider's retry): still a replay.
        let b = keys("t/hook", &[2; 32], Some("evt_1"));
        // Same id in another source: not a replay.
        let c = keys("t/other", &[1; 32], Some("evt_1"));
        assert_eq!(s.admit("t/hook", &a, 0, 1000, 10), Ok(()));
        assert_eq!(s.admit("t/hook", &a, 500, 1000, 10), Err(Refused::Seen));
        assert_eq!(s.admit("t/hook", &b, 500, 1000, 10), Err(Refused::Seen));
        assert_eq!(s.admit("t/other", &c, 500, 1000, 10), Ok(()));
        assert_eq!(s.admit("t/hook", &a, 1000, 1000, 10), Ok(()), "expired");
    }

    #[test]
    fn capacity_refuses_instead_of_forgetting() {
        let mut s = ReplayStore::default();
        for i in 0..5u8 {
            assert_eq!(s.admit("x", &keys("x", &[i; 32], None), 0, 1000, 5), Ok(()));
        }
        assert_eq!(
            s.admit("x", &keys("x", &[9; 32], None), 10, 1000, 5),
            Err(Refused::Full)
        );
        // The first five are still refused as replays: nothing was evicted.
        assert_eq!(
            s.admit("x", &keys("x", &[0; 32], None), 10, 1000, 5),
            Err(Refused::Seen)
        );
        assert_eq!(
            s.admit("x", &keys("x", &[9; 32], None), 1000, 1000, 5),
            Ok(())
        );
        assert_eq!(s.len("x"), (1, 1));
    }

    #[test]
    fn forgotten_keys_are_taken_again_and_do_not_pile_up() {
        let mut s = ReplayStore::default();
        for i in 0..1000u32 {
            let k = keys("x", &[7; 32], Some(&i.to_string()));
            assert_eq!(s.admit("x", &k, 0, 1000, 4), Ok(()));
            s.forget("x", &k);
            assert_eq!(s.admit("x", &k, 0, 1000, 4), Ok(()));
            s.forget("x", &k);
        }
        let (live, order) = s.len("x");
        assert_eq!(live, 0);
        assert!(order <= 8, "{order}");
    }

    #[test]
    fn the_number_of_sources_is_bounded() {
        let mut s = ReplayStore::default();
        for i in 0..MAX_SCOPES {
            let scope = format!("t/{i}");
            assert_eq!(
                s.admit(&scope, &keys(&scope, &[0; 32], None), 0, 10, 1),
                Ok(())
            );
        }
        assert_eq!(
            s.admit("t/new", &keys("t/new", &[0; 32], None), 5, 10, 1),
            Err(Refused::Full)
        );
        // Once the others have expired, their slots are reused.
        assert_eq!(
            s.admit("t/new", &keys("t/new", &[0; 32], None), 10, 10, 1),
            Ok(())
        );
        assert!(s.scopes.len() <= MAX_SCOPES);
    }
}
