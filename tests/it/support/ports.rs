//! Loopback ports for servers a test starts as child processes, which bind them some time
//! after the test picks them. Port 0 cannot be used there, and a port the kernel handed
//! out for port 0 and the test released can be taken in that gap as the local port of
//! any outgoing connection (both draw from the ephemeral range); SeaweedFS's filer lost
//! its port that way in CI. These come from below the ephemeral range, which the kernel
//! never hands out on its own, walked from a per-process random start so tests in one
//! binary never get the same port twice, and each is checked bindable when picked.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Lowest port used: clear of the well-known and registered ports most services take.
const FLOOR: u32 = 10_000;

/// The ports to walk: below the ephemeral range if that leaves room, else above it.
fn range() -> (u32, u32) {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999));
    if lo > FLOOR + 1_000 {
        (FLOOR, lo)
    } else if hi + 1_000 < 65_535 {
        (hi + 1, 65_536)
    } else {
        panic!("ip_local_port_range {lo}-{hi} leaves no ports outside it for test servers")
    }
}

/// The range to walk (read once) and the next offset into it.
fn state() -> &'static (u32, u32, AtomicU32) {
    static STATE: OnceLock<(u32, u32, AtomicU32)> = OnceLock::new();
    STATE.get_or_init(|| {
        let (start, end) = range();
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = std::process::id() ^ t.subsec_nanos();
        (start, end, AtomicU32::new(seed % (end - start)))
    })
}

/// A loopback TCP port that is free now and that no other call in this process returns.
pub fn free_port() -> u16 {
    let (start, end, next) = state();
    let span = end - start;
    for _ in 0..span {
        let port = (start + next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {start}-{end}")
}
