//! Deadline polls: wait for a condition by checking it every few milliseconds until a
//! deadline, and fail naming what was awaited (with what the last check saw). A fixed
//! sleep either wastes time or, on a loaded machine, is too short; these do neither.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked.
const EVERY: Duration = Duration::from_millis(50);

/// Polls `f` until it returns Some or `within` passes (then panics naming `what`).
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(EVERY);
    }
}

/// Polls `cond` until it holds or `within` passes (then panics naming `what`).
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(within, what, || cond().then_some(()))
}

/// The async form for tests on a tokio runtime: `f` gives Ok(value) when the condition
/// holds, or Err(what it saw), which the timeout message repeats.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(EVERY).await;
    }
}
