//! Property tests of the webhook URL policy, the parser of every URL a partner registers:
//! internal IPv4 addresses in every notation a URL parser accepts (decimal, octal, hex, short,
//! trailing dot, percent-encoded, full-width, IPv4-mapped, -compatible, NAT64 and 6to4 IPv6) and
//! behind userinfo or fragment tricks are never allowed unless an allowed network covers them;
//! public ones are. Run longer with `PROPTEST_CASES=100000 cargo test --workspace --lib fuzz`.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

/// IPv4 networks webhooks must not reach, written independently of [`is_internal`] so that
/// the two check each other: this-network, private, shared, loopback, link-local, benchmarking,
/// documentation, multicast, reserved and broadcast.
const INTERNAL_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),
    (0x0a00_0000, 8),
    (0x6440_0000, 10),
    (0x7f00_0000, 8),
    (0xa9fe_0000, 16),
    (0xac10_0000, 12),
    (0xc000_0200, 24),
    (0xc0a8_0000, 16),
    (0xc612_0000, 15),
    (0xc633_6400, 24),
    (0xcb00_7100, 24),
    (0xe000_0000, 4),
    (0xf000_0000, 4),
];

fn in_internal_v4(a: u32) -> bool {
    INTERNAL_V4
        .iter()
        .any(|(net, len)| a >> (32 - len) == net >> (32 - len))
}

fn internal_v4() -> impl Strategy<Value = u32> {
    (prop::sample::select(INTERNAL_V4), any::<u32>())
        .prop_map(|((net, len), host)| net | (host & (u32::MAX >> len)))
}

fn public_v4() -> impl Strategy<Value = u32> {
    any::<u32>().prop_filter("public", |a| !in_internal_v4(*a))
}

/// Host notations of an IPv4 address that IPv4 URL parsing (WHATWG) reads as that address.
fn v4_notations(a: u32) -> Vec<String> {
    let [o1, o2, o3, o4] = a.to_be_bytes();
    let dotted = format!("{o1}.{o2}.{o3}.{o4}");
    let octal = |o: u8| {
        if o == 0 {
            "0".to_owned()
        } else {
            format!("0{o:o}")
        }
    };
    let full_width: String = dotted
        .chars()
        .map(|c| {
            c.to_digit(10)
                .map_or('．', |d| char::from_u32(0xff10 + d).expect("digit"))
        })
        .collect();
    vec![
        dotted.clone(),
        format!("{a}"),
        format!("0x{a:x}"),
        format!("0X{a:08X}"),
        format!(
            "{}",
            octal(o1) + "." + &octal(o2) + "." + &octal(o3) + "." + &octal(o4)
        ),
        format!("0x{o1:x}.0x{o2:x}.0x{o3:x}.0x{o4:x}"),
        format!("{o1}.{o2}.{}", u32::from(o3) << 8 | u32::from(o4)),
        format!("{o1}.{}", a & 0x00ff_ffff),
        format!("{dotted}."),
        dotted.bytes().map(|b| format!("%{b:02X}")).collect(),
        full_width,
        dotted.replace('.', "。"),
    ]
}

/// IPv6 literals that stand for an IPv4 address (see `embedded_v4`).
fn v6_notations(a: u32) -> Vec<String> {
    let dotted = Ipv4Addr::from(a).to_string();
    let (hi, lo) = (a >> 16, a & 0xffff);
    vec![
        format!("[::ffff:{dotted}]"),
        format!("[::ffff:{hi:x}:{lo:x}]"),
        format!("[0:0:0:0:0:FFFF:{dotted}]"),
        format!("[::{dotted}]"),
        format!("[64:ff9b::{dotted}]"),
        format!("[2002:{hi:x}:{lo:x}::1]"),
    ]
}

/// A URL around `host`: scheme, port and path vary; nothing else hides another host.
fn plain_url(host: &str, (scheme, port, path): &(usize, Option<u16>, String)) -> String {
    let scheme = ["http", "https", "HTTP", "hTTps"][*scheme];
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}/{path}")
}

/// URLs whose host is `host` but that dress it up to look like another one.
fn tricky_urls(host: &str) -> Vec<String> {
    vec![
        format!("http://a@{host}/"),
        format!("http://hooks.example.com@{host}/"),
        format!("http://user:pass@{host}:80/"),
        format!("http://{host}#@hooks.example.com/"),
        format!("http://{host}?@hooks.example.com/"),
        format!("http://{host}\\@hooks.example.com/"),
        format!("http://{host}/@hooks.example.com/"),
        format!("https://{host}:443\\.hooks.example.com/"),
    ]
}

fn url_parts() -> impl Strategy<Value = (usize, Option<u16>, String)> {
    (0..4usize, any::<Option<u16>>(), "[a-z0-9/._-]{0,12}")
}

proptest! {
    #[test]
    fn fuzz_internal_ipv4_in_every_notation_is_refused(a in internal_v4(), parts in url_parts()) {
        let strict = Policy::default();
        for host in v4_notations(a).iter().chain(&v6_notations(a)) {
            for url in std::iter::once(plain_url(host, &parts)).chain(tricky_urls(host)) {
                let r = strict.check_url(&url);
                prop_assert!(r.is_err(), "{} ({}) was allowed", url, Ipv4Addr::from(a));
                // The URL parsed: what refuses it is the address (or its credentials), not a
                // failure to read the host.
                if let Err(TargetError::BadUrl(why)) = &r {
                    prop_assert!(why.contains("credentials") || why.contains("port"), "{}: {}", url, why);
                }
            }
        }
    }

    #[test]
    fn fuzz_public_ipv4_in_every_notation_is_allowed(a in public_v4(), parts in url_parts()) {
        let strict = Policy::default();
        for host in v4_notations(a).iter().chain(&v6_notations(a)) {
            let url = plain_url(host, &parts);
            let r = strict.check_url(&url);
            prop_assert!(r.is_ok(), "{} ({}) was refused: {:?}", url, Ipv4Addr::from(a), r);
        }
    }

    #[test]
    fn fuzz_loopback_is_allowed_only_when_configured(host_bits in 0..=0x00ff_ffffu32, parts in url_parts()) {
        let a = 0x7f00_0000 | host_bits;
        let tests = Policy::new(vec!["127.0.0.0/8".parse().expect("a network")]);
        for host in v4_notations(a) {
            let url = plain_url(&host, &parts);
            prop_assert!(tests.check_url(&url).is_ok(), "{}", url);
            prop_assert!(Policy::default().check_url(&url).is_err(), "{}", url);
        }
    }

    #[test]
    fn fuzz_internal_and_public_ipv6(
        internal in prop_oneof![
            any::<u128>().prop_map(|b| (0xfc00u128 << 112) | (b >> 7)),  // unique local
            any::<u128>().prop_map(|b| (0xfe80u128 << 112) | (b >> 10)), // link-local
            any::<u128>().prop_map(|b| (0xff00u128 << 112) | (b >> 8)),  // multicast
            Just(1u128),
            Just(0u128),
        ],
        public in (0x2000u16..0x4000, any::<u128>())
            .prop_filter("not 6to4 or documentation", |(s, b)| *s != 0x2002 && !(*s == 0x2001 && (b >> 112) as u16 == 0x0db8))
            .prop_map(|(s, b)| (u128::from(s) << 112) | (b >> 16)),
        parts in url_parts(),
    ) {
        let strict = Policy::default();
        let host = format!("[{}]", Ipv6Addr::from(internal));
        prop_assert!(matches!(strict.check_url(&plain_url(&host, &parts)), Err(TargetError::NotPublic(_))), "{}", host);
        let host = format!("[{}]", Ipv6Addr::from(public));
        prop_assert!(strict.check_url(&plain_url(&host, &parts)).is_ok(), "{}", host);
    }

    #[test]
    fn fuzz_any_text_is_a_checked_url_or_refused(raw in prop_oneof![
        ".{0,60}",
        "(https?|ftp|file|javascript|gopher)://[a-z0-9@:.\\[\\]%/#?\\\\-]{0,40}",
    ]) {
        match Policy::default().check_url(&raw) {
            Ok(url) => {
                prop_assert!(matches!(url.scheme(), "http" | "https"));
                prop_assert!(url.username().is_empty() && url.password().is_none());
                match url.host() {
                    Some(url::Host::Ipv4(ip)) => prop_assert!(!is_internal(IpAddr::V4(ip))),
                    Some(url::Host::Ipv6(ip)) => prop_assert!(!is_internal(IpAddr::V6(ip))),
                    Some(url::Host::Domain(d)) => prop_assert!(!d.is_empty()),
                    None => prop_assert!(false, "no host"),
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// The oracle above and [`is_internal`] agree on every IPv4 network boundary.
#[test]
fn fuzz_oracle_agrees_at_the_boundaries() {
    for (net, len) in INTERNAL_V4 {
        let last = net | (u32::MAX >> len);
        for a in [*net, last, net.wrapping_sub(1), last.wrapping_add(1)] {
            assert_eq!(
                is_internal(IpAddr::V4(Ipv4Addr::from(a))),
                in_internal_v4(a),
                "{}",
                Ipv4Addr::from(a)
            );
        }
    }
}
