//! Small items every layer of the store shares: the clock and the decoded-record cap. A
//! leaf: it uses no other file of the store, so any of them may use it.

/// Largest decoded record the store hands out; larger payloads are refused as corrupt input.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
