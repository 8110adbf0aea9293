//! The test support's port picker (support::ports), which the S3 server, the serve tests and
//! the OIDC tests rely on: its ports must never come from the range the kernel gives to
//! port 0 and to outgoing connections, must be bindable, and must not repeat in a process.

use std::collections::HashSet;

use crate::support;

#[test]
fn picked_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = range.split_whitespace().map(|v| v.parse::<u16>().unwrap());
    let (lo, hi) = (it.next().unwrap(), it.next().unwrap());
    // Ports held open by this test while it picks more: the picker must step past them.
    let mut held = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..200 {
        let p = support::free_port();
        assert!(
            !(lo..=hi).contains(&p),
            "port {p} is inside ip_local_port_range {lo}-{hi}"
        );
        assert!(seen.insert(p), "port {p} returned twice");
        let l = std::net::TcpListener::bind(("127.0.0.1", p))
            .unwrap_or_else(|e| panic!("picked port {p} is not bindable: {e}"));
        if i % 2 == 0 {
            held.push(l);
        }
    }
}
