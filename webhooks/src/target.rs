//! Where a webhook may be sent. A partner's URL must not reach muster's own network: loopback,
//! private, link-local, shared, documentation and multicast addresses are refused unless an
//! allowed network covers them. The check runs when a subscription is made and again on every
//! connection (the resolver below), so a name that later resolves inward is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Network;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("the URL is not a valid http(s) URL: {0}")]
    BadUrl(String),
    #[error("{0} is a loopback, private or link-local address; webhooks go to public addresses")]
    NotPublic(IpAddr),
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

/// True for addresses a webhook must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, shared address space
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_multicast()
                || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1) // 64:ff9b:1::/48, local NAT64
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || seg[0] == 0x2001 && seg[1] == 0x0db8 // documentation
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, which covers `::` and `::1`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`). A gateway on the way delivers to that IPv4 address, so it is judged as one.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = v6.segments();
    let [.., hi, lo] = seg;
    let tail = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(tail)
    } else if seg[0] == 0x2002 {
        Some(Ipv4Addr::from(
            (u32::from(seg[1]) << 16) | u32::from(seg[2]),
        ))
    } else {
        None
    }
}

/// Which addresses endpoints may reach.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: Arc<Vec<Network>>,
}

impl Policy {
    pub fn new(allowed: Vec<Network>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allowed.iter().any(|n| n.contains(ip))
    }

    /// Checks a URL's form and, for an address literal, the address. Names are checked when
    /// resolved ([`Policy::check_resolved`] at subscription, the resolver on every send).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, TargetError> {
        let url = url::Url::parse(raw).map_err(|e| TargetError::BadUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::BadUrl(format!(
                "scheme {} is not http(s)",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::BadUrl(
                "credentials in URLs are not allowed".into(),
            ));
        }
        match url.host() {
            None => Err(TargetError::BadUrl("the URL has no host".into())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)).map(|()| url.clone()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)).map(|()| url.clone()),
            Some(url::Host::Domain(_)) => Ok(url.clone()),
        }
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(TargetError::NotPublic(ip))
        }
    }

    /// The URL's form, and every address its host resolves to now.
    pub async fn check_resolved(&self, raw: &str) -> Result<url::Url, TargetError> {
        let url = self.check_url(raw)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
                .collect();
            if addrs.is_empty() {
                return Err(TargetError::Unresolvable(host.to_owned()));
            }
            for a in addrs {
                self.check_ip(a.ip())?;
            }
        }
        Ok(url)
    }
}

/// reqwest's resolver, keeping only permitted addresses: the connection can only go where the
/// policy allows, whatever the name resolves to at send time.
impl Resolve for Policy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address webhooks may reach").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = Policy::default();
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            assert!(
                matches!(strict.check_url(url), Err(TargetError::NotPublic(_))),
                "{url}"
            );
        }
        assert!(strict.check_url("https://93.184.215.14/hook").is_ok());
        assert!(strict.check_url("https://hooks.example.com/x").is_ok());
        assert!(matches!(
            strict.check_url("ftp://x/"),
            Err(TargetError::BadUrl(_))
        ));
        assert!(matches!(
            strict.check_url("http://u:p@x/"),
            Err(TargetError::BadUrl(_))
        ));
        let tests = Policy::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(tests.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(tests.check_url("http://127.0.0.2/").is_err());
    }

    #[test]
    fn ipv6_forms_of_internal_ipv4_addresses_are_internal() {
        for ip in [
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::",
            "::1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:c0a8:0001::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "::ffff:93.184.215.14",
            "64:ff9b::5db8:d70e",
            "2002:5db8:d70e::1",
            "2606:4700::1111",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(matches!(
            Policy::default().check_url("http://[64:ff9b::a9fe:a9fe]/latest/meta-data"),
            Err(TargetError::NotPublic(_))
        ));
    }

    #[tokio::test]
    async fn names_resolving_inward_are_refused() {
        let strict = Policy::default();
        assert!(matches!(
            strict.check_resolved("http://localhost:9000/").await,
            Err(TargetError::NotPublic(_))
        ));
    }
}
