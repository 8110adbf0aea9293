//! A bounded cache that never serves an entry older than its last invalidation.
//!
//! Fills race with invalidations: a request may read a key's row, then the key is revoked
//! and invalidated, then the request stores what it read. Every invalidation bumps an
//! epoch; a fill carries the epoch seen *before* its read and is dropped if the epoch moved,
//! so a revoked key can never come back from a stale fill. When full, an arbitrary half of
//! the entries is dropped (cheap, bounded, and misses only cost one read).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct EpochCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    cap: usize,
}

struct Inner<K, V> {
    epoch: u64,
    map: HashMap<K, V>,
}

impl<K: Hash + Eq + Clone, V: Clone> EpochCache<K, V> {
    pub fn new(cap: usize) -> Self {
        EpochCache {
            inner: Mutex::new(Inner {
                epoch: 0,
                map: HashMap::new(),
            }),
            cap: cap.max(2),
        }
    }

    /// The value, or the epoch to pass to [`EpochCache::fill`] after reading it.
    pub fn get(&self, k: &K) -> Result<V, u64> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.map.get(k).cloned().ok_or(g.epoch)
    }

    pub fn fill(&self, k: K, v: V, epoch: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.epoch != epoch {
            return;
        }
        if g.map.len() >= self.cap {
            let drop: Vec<K> = g.map.keys().take(self.cap / 2).cloned().collect();
            for k in drop {
                g.map.remove(&k);
            }
        }
        g.map.insert(k, v);
    }

    pub fn invalidate(&self, k: &K) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.epoch += 1;
        g.map.remove(k);
    }

    pub fn invalidate_where(&self, pred: impl Fn(&K, &V) -> bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.epoch += 1;
        g.map.retain(|k, v| !pred(k, v));
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_fill_after_invalidation_is_dropped_and_size_is_bounded() {
        let c = EpochCache::new(4);
        let e = c.get(&"k").unwrap_err();
        c.invalidate(&"k");
        c.fill("k", 1, e);
        assert!(c.get(&"k").is_err());
        let e = c.get(&"k").unwrap_err();
        c.fill("k", 2, e);
        assert_eq!(c.get(&"k"), Ok(2));
        for i in 0..100 {
            let e = c.get(&"x").unwrap_err();
            c.fill(Box::leak(format!("{i}").into_boxed_str()) as &str, i, e);
        }
        assert!(c.len() <= 4);
    }
}
