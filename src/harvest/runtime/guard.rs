//! Which network addresses a harvest may reach.
//!
//! By default only public addresses: a tenant's source must not be able to reach the node's
//! loopback services, its private network or cloud metadata endpoints. Host names are
//! checked after resolution (the resolver drops non-public addresses, so DNS rebinding
//! cannot sneak one in), IP literals before each request and each redirect hop.
//! `harvest.allow_private_targets` turns the check off for sites on the node itself (demo,
//! tests).
//!
//! "Public" follows the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890,
//! RFC 8190): every block whose "Globally Reachable" is False is refused, and so are the
//! blocks below that are reachable in the registry's sense but never host a web site
//! (IETF protocol assignments and their anycast services, 6to4, deprecated forms). IPv6 is
//! an allow-list: only global unicast `2000::/3` (the only space IANA hands out, RFC 4291
//! §2.4) can be public, so ranges the registries add later outside it stay refused. The one
//! IPv6 form judged by what it embeds is the NAT64 well-known prefix `64:ff9b::/96`
//! (RFC 6052): on an IPv6-only node DNS64 answers every IPv4-only site with such an address,
//! and the translator reaches exactly the embedded IPv4 address, so it is public exactly
//! when that IPv4 address is (RFC 6052 §3.1 forbids the prefix for non-global IPv4 anyway).
//! IPv4-mapped `::ffff:a.b.c.d` is a socket's spelling of that IPv4 address and is judged
//! the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// IPv4 blocks refused, with the name a blocked request reports. The registry's blocks with
/// Globally Reachable = False, plus multicast (address-space registry) and the deprecated
/// 6to4 relay anycast. 192.0.0.0/24 is refused whole: its reachable entries (PCP and TURN
/// anycast, 192.0.0.9 and .10) are protocol endpoints, not web servers.
const V4_REFUSED: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "0.0.0.0/8 \"this network\" (RFC 791)"),
    (v4(10, 0, 0, 0, 8), "10.0.0.0/8 private-use (RFC 1918)"),
    (
        v4(100, 64, 0, 0, 10),
        "100.64.0.0/10 shared address space (RFC 6598)",
    ),
    (v4(127, 0, 0, 0, 8), "127.0.0.0/8 loopback (RFC 1122)"),
    (
        v4(169, 254, 0, 0, 16),
        "169.254.0.0/16 link-local (RFC 3927)",
    ),
    (
        v4(172, 16, 0, 0, 12),
        "172.16.0.0/12 private-use (RFC 1918)",
    ),
    (
        v4(192, 0, 0, 0, 24),
        "192.0.0.0/24 IETF protocol assignments (RFC 6890)",
    ),
    (
        v4(192, 0, 2, 0, 24),
        "192.0.2.0/24 documentation TEST-NET-1 (RFC 5737)",
    ),
    (
        v4(192, 88, 99, 0, 24),
        "192.88.99.0/24 deprecated 6to4 relay anycast (RFC 7526)",
    ),
    (
        v4(192, 168, 0, 0, 16),
        "192.168.0.0/16 private-use (RFC 1918)",
    ),
    (
        v4(198, 18, 0, 0, 15),
        "198.18.0.0/15 benchmarking (RFC 2544)",
    ),
    (
        v4(198, 51, 100, 0, 24),
        "198.51.100.0/24 documentation TEST-NET-2 (RFC 5737)",
    ),
    (
        v4(203, 0, 113, 0, 24),
        "203.0.113.0/24 documentation TEST-NET-3 (RFC 5737)",
    ),
    (v4(224, 0, 0, 0, 4), "224.0.0.0/4 multicast (RFC 5771)"),
    (
        v4(240, 0, 0, 0, 4),
        "240.0.0.0/4 reserved, with 255.255.255.255 limited broadcast (RFC 1112, RFC 919)",
    ),
];

/// The NAT64 well-known prefix, judged by the IPv4 address in its last 32 bits.
const NAT64_WKP: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// IPv6 blocks refused, checked in order (the first match names the reason). Everything
/// outside 2000::/3 is refused anyway; the blocks there are listed for a precise message.
/// 2001::/23 is refused whole: besides Teredo (which embeds an obfuscated client IPv4
/// address and a server IPv4 address), benchmarking and ORCHID, its reachable entries are
/// anycast protocol endpoints (PCP, TURN, DNS-SD SRP, AMT, AS112) or identifiers (ORCHIDv2,
/// DETs) that no harvest source has reason to reach.
const V6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6([0; 8], 128), "::/128 unspecified (RFC 4291)"),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        "::1/128 loopback (RFC 4291)",
    ),
    (
        v6([0; 8], 96),
        "::/96 IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)",
    ),
    (
        v6([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        "::ffff:0:0:0/96 IPv4-translated (RFC 2765)",
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "64:ff9b:1::/48 local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "100::/64 discard-only (RFC 6666)",
    ),
    (
        v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64),
        "100:0:0:1::/64 dummy prefix (RFC 9780)",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        "2001::/32 Teredo (RFC 4380)",
    ),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        "2001:2::/48 benchmarking (RFC 5180)",
    ),
    (
        v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),
        "2001:10::/28 ORCHID, deprecated (RFC 4843)",
    ),
    (
        v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
        "2001:20::/28 ORCHIDv2 (RFC 7343)",
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "2001::/23 IETF protocol assignments (RFC 2928)",
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "2001:db8::/32 documentation (RFC 3849)",
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        "2002::/16 6to4, embeds an IPv4 address (RFC 3056)",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "3fff::/20 documentation (RFC 9637)",
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "5f00::/16 SRv6 segment identifiers (RFC 9602)",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "fc00::/7 unique-local (RFC 4193)",
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "fe80::/10 link-local (RFC 4291)",
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "fec0::/10 site-local, deprecated (RFC 3879)",
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        "ff00::/8 multicast (RFC 4291)",
    ),
];

const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Why `ip` is not a public address (the refused block, named with its RFC), or `None`
/// when it is public.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => V4_REFUSED
            .iter()
            .find(|(net, _)| net.contains(&a))
            .map(|(_, why)| *why),
        IpAddr::V6(a) => {
            if let Some(embedded) = judged_as_v4(a) {
                return refusal(IpAddr::V4(embedded));
            }
            if let Some((_, why)) = V6_REFUSED.iter().find(|(net, _)| net.contains(&a)) {
                return Some(why);
            }
            if !GLOBAL_UNICAST.contains(&a) {
                return Some("outside global unicast 2000::/3, unassigned (RFC 4291 §2.4)");
            }
            None
        }
    }
}

/// The IPv4 address an IPv6 address is judged as: IPv4-mapped, or the last 32 bits of a
/// NAT64 well-known-prefix address (RFC 6052 §2.2).
fn judged_as_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4);
    }
    NAT64_WKP.contains(&a).then(|| {
        let o = a.octets();
        Ipv4Addr::new(o[12], o[13], o[14], o[15])
    })
}

/// `ip` and why it is refused, for messages: "64:ff9b::7f00:1 (reaching 127.0.0.1) is in …".
fn describe(ip: IpAddr, why: &str) -> String {
    match ip {
        IpAddr::V6(a) => match judged_as_v4(a) {
            Some(v4) => format!("{ip} (reaching {v4}) is in {why}"),
            None => format!("{ip} is in {why}"),
        },
        IpAddr::V4(_) => format!("{ip} is in {why}"),
    }
}

/// Whether `ip` is a public unicast address a harvest may reach.
pub fn is_public(ip: IpAddr) -> bool {
    refusal(ip).is_none()
}

/// The error a blocked address produces (found again in reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("{host}: {detail} (harvest.allow_private_targets is off)")]
pub struct BlockedAddress {
    pub host: String,
    pub detail: String,
}

/// Checks an URL's host when it is an IP literal (names are checked by [`GuardedResolver`]).
pub fn check_url(u: &Url, allow_private: bool) -> Result<(), BlockedAddress> {
    if allow_private {
        return Ok(());
    }
    let ip = match u.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match refusal(ip) {
        None => Ok(()),
        Some(why) => Err(BlockedAddress {
            host: u.host_str().unwrap_or_default().to_owned(),
            detail: format!("{}, not a public address", describe(ip, why)),
        }),
    }
}

/// Keeps the public addresses of a resolution, or says why none is left.
fn public_only(
    host: &str,
    addrs: impl Iterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, BlockedAddress> {
    let mut kept = Vec::new();
    let mut first_refused = None;
    for a in addrs {
        match refusal(a.ip()) {
            None => kept.push(a),
            Some(why) => {
                first_refused.get_or_insert((a.ip(), why));
            }
        }
    }
    if !kept.is_empty() {
        return Ok(kept);
    }
    let detail = match first_refused {
        Some((ip, why)) => {
            format!(
                "resolves only to non-public addresses (e.g. {})",
                describe(ip, why)
            )
        }
        None => "resolves to no address".to_owned(),
    };
    Err(BlockedAddress {
        host: host.to_owned(),
        detail,
    })
}

/// A resolver that drops non-public addresses unless allowed.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    pub fn shared(allow_private: bool) -> Arc<Self> {
        Arc::new(GuardedResolver { allow_private })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Vec<SocketAddr> = if allow {
                found.collect()
            } else {
                public_only(&host, found)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
            };
            let it: Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the issue names, and one address of every refused block.
    const REFUSED: &[&str] = &[
        // IPv4 special-purpose registry, Globally Reachable = False
        "0.0.0.0",
        "0.1.2.3",
        "10.1.2.3",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.1",
        "192.0.0.8",
        "192.0.0.170",
        "192.0.0.9",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6 special-purpose registry and address space
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",
        "::8.8.8.8",
        "::ffff:0:7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::192.168.0.1",
        "64:ff9b::100.64.0.1",
        "64:ff9b:1::8.8.8.8",
        "64:ff9b:1:ffff::1",
        "100::1",
        "100::ffff:ffff:ffff:ffff",
        "100:0:0:1::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:1::1",
        "2001:1::2",
        "2001:2::1",
        "2001:3::1",
        "2001:4:112::1",
        "2001:10::1",
        "2001:1f::1",
        "2001:20::1",
        "2001:2f:ffff::1",
        "2001:30::1",
        "2001:1ff:ffff::1",
        "2001:db8::1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2002:808:808::1",
        "3fff::1",
        "3fff:fff::1",
        "5f00::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "feff::1",
        "ff02::1",
        "ff0e::1",
        "4000::1",
        "1::1",
        "e000::1",
    ];

    const PUBLIC: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.1",
        "192.88.98.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "64:ff9b::5db8:d822",
        "2001:200::1",
        "2001:4860:4860::8888",
        "2606:2800:220:1::1",
        "2a00:1450:4001:82b::200e",
        "2620:4f:8000::1",
        "3ffe::1",
        "3fff:1000::1",
    ];

    #[test]
    fn special_purpose_addresses_are_refused_with_their_block() {
        for a in REFUSED {
            let ip: IpAddr = a.parse().unwrap();
            assert!(!is_public(ip), "{a} must be refused");
            assert!(refusal(ip).is_some_and(|w| w.contains("RFC")), "{a}");
        }
        for a in PUBLIC {
            assert_eq!(refusal(a.parse().unwrap()), None, "{a} is public");
        }
        let why = |a: &str| refusal(a.parse().unwrap()).unwrap();
        assert!(why("::127.0.0.1").starts_with("::/96 IPv4-compatible"));
        assert!(why("64:ff9b::7f00:1").starts_with("127.0.0.0/8 loopback"));
        assert!(why("2002:7f00:1::").starts_with("2002::/16 6to4"));
        assert!(why("2001::1").starts_with("2001::/32 Teredo"));
        assert!(why("2001:4:112::1").starts_with("2001::/23 IETF"));
        assert!(why("fec0::1").starts_with("fec0::/10 site-local"));
        assert!(why("4000::1").starts_with("outside global unicast"));
    }

    #[test]
    fn ip_literals_in_urls_are_checked_in_every_spelling() {
        for u in [
            "http://127.0.0.1:8080/x",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://[::127.0.0.1]:8080/",
            "http://[::7f00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
            "http://[2001::1]/",
            "http://[fec0::1]/",
            "http://[::ffff:7f00:1]/",
            "https://[fe80::1]/",
        ] {
            let url = Url::parse(u).unwrap();
            let e = check_url(&url, false).expect_err(u);
            assert!(e.to_string().contains("not a public address"), "{u}: {e}");
            assert!(check_url(&url, true).is_ok(), "{u}");
        }
        assert!(check_url(&Url::parse("http://example.org/").unwrap(), false).is_ok());
        assert!(check_url(&Url::parse("http://[64:ff9b::8.8.8.8]/").unwrap(), false).is_ok());
        assert!(check_url(&Url::parse("http://8.8.8.8/").unwrap(), false).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_non_public_answers() {
        let sa = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        let kept = public_only(
            "mixed.example",
            [sa("::127.0.0.1"), sa("8.8.8.8"), sa("2002:7f00:1::")].into_iter(),
        )
        .unwrap();
        assert_eq!(kept, vec![sa("8.8.8.8")]);
        let e = public_only(
            "rebind.example",
            [sa("64:ff9b::7f00:1"), sa("fec0::1")].into_iter(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        assert!(
            e.to_string().starts_with("rebind.example: resolves only"),
            "{e}"
        );

        // Through the resolver reqwest calls, with literal names getaddrinfo answers itself.
        let guarded = GuardedResolver {
            allow_private: false,
        };
        for name in [
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "localhost",
        ] {
            let n: Name = name.parse().unwrap();
            match guarded.resolve(n).await {
                Ok(addrs) => panic!("{name} resolved to {:?}", addrs.collect::<Vec<_>>()),
                Err(e) => assert!(e.downcast_ref::<BlockedAddress>().is_some(), "{name}: {e}"),
            }
        }
        let open = GuardedResolver {
            allow_private: true,
        };
        let n: Name = "::127.0.0.1".parse().unwrap();
        let got: Vec<_> = open.resolve(n).await.unwrap().map(|a| a.ip()).collect();
        assert_eq!(got, vec!["::127.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
