//! Token states and the process-wide map of the shared ones: one slot (an access token
//! behind the async mutex that serialises its refreshes) per (tenant, connection) in use.
//!
//! A leaf, so that the harvester can own the map and `auth` can use the slots without
//! either importing the other. The map holds weak references: a slot lives while a run or
//! request uses it (the token chain itself is in the tenant database), and dead entries
//! are pruned before the map could pass its bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// Most shared token slots alive at once (runs are bounded by
/// `harvest.max_concurrent_runs`; this bounds fetch-now requests too).
pub(super) const MAX_LIVE_SLOTS: usize = 4096;

/// An access token in memory.
pub(super) struct Token {
    pub(super) access: String,
    /// Refresh before this instant.
    pub(super) refresh_at: Instant,
    /// The credential it was obtained with: a connection redefined while a run of the old
    /// definition holds the slot must not reuse the other's token.
    pub(super) owner: [u8; 32],
}

/// One token state and the lock that serialises its refreshes.
pub(super) type TokenSlot = Arc<TokenState>;
type TokenState = tokio::sync::Mutex<Option<Token>>;

/// The shared slot of each (tenant, connection) in use.
#[derive(Default)]
pub(super) struct TokenSlots {
    map: Mutex<HashMap<(String, String), Weak<TokenState>>>,
}

impl TokenSlots {
    /// The slot of (`tenant`, `name`), shared with every other user alive; None when
    /// [`MAX_LIVE_SLOTS`] are in use.
    pub(super) fn slot(&self, tenant: &str, name: &str) -> Option<TokenSlot> {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.to_owned(), name.to_owned());
        if let Some(s) = m.get(&key).and_then(Weak::upgrade) {
            return Some(s);
        }
        if m.len() >= MAX_LIVE_SLOTS {
            m.retain(|_, w| w.strong_count() > 0);
        }
        if m.len() >= MAX_LIVE_SLOTS {
            return None;
        }
        let s: TokenSlot = Arc::new(tokio::sync::Mutex::new(None));
        m.insert(key, Arc::downgrade(&s));
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_of_one_connection_share_a_slot_while_it_lives() {
        let slots = TokenSlots::default();
        let a = slots.slot("acme", "whoop").unwrap();
        let b = slots.slot("acme", "whoop").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &slots.slot("other", "whoop").unwrap()));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "the map keeps no slot alive");
    }
}
