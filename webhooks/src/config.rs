use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[webhooks]` in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds before each attempt: the first is the first attempt's (normally 0), and a
    /// delivery fails for good after the last. Svix's schedule by default (0, 5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h). A subscription may bring its own.
    pub retry_schedule_secs: Vec<u32>,
    /// Each retry delay is moved by up to this share either way, so that a recovered endpoint
    /// is not hit by every queued retry at once.
    pub jitter: f64,
    /// At most one `attendance.updated` per event in this time (by the snapshots' own time).
    #[serde(with = "humantime_serde")]
    pub attendance_every: Duration,
    /// Time allowed for one POST, connect to last byte.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// An endpoint failing without a single success for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// Networks that endpoints may resolve to although they are loopback, private or link-local
    /// (refused otherwise), e.g. `["127.0.0.1/32"]` for tests.
    pub allow_networks: Vec<String>,
    /// Deliveries one dispatcher attempts at once.
    pub concurrency: usize,
    /// How often a dispatcher looks for due deliveries when it found none.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Endpoints one partner may have; each adds deliveries to every occurrence.
    pub max_endpoints_per_partner: usize,
    /// Deliveries one replay may queue; a window holding more is refused (replay shorter ones).
    pub max_replay: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            retry_schedule_secs: DEFAULT_SCHEDULE.to_vec(),
            jitter: 0.2,
            attendance_every: s(30),
            request_timeout: s(15),
            disable_after: s(5 * 24 * 3600),
            allow_networks: Vec::new(),
            concurrency: 16,
            poll_interval: Duration::from_millis(250),
            max_endpoints_per_partner: 20,
            max_replay: 10_000,
        }
    }
}

/// Svix's retry schedule, in seconds.
pub const DEFAULT_SCHEDULE: [u32; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

/// The longest schedule a subscription may bring, and its longest delay (a day).
pub const MAX_ATTEMPTS: usize = 20;
pub const MAX_DELAY_SECS: u32 = 86_400;

/// Checks a retry schedule, the configured one or a subscription's.
pub fn check_schedule(secs: &[u32]) -> Result<(), String> {
    if secs.is_empty() || secs.len() > MAX_ATTEMPTS {
        return Err(format!("a retry schedule has 1 to {MAX_ATTEMPTS} attempts"));
    }
    if secs.iter().any(|s| *s > MAX_DELAY_SECS) {
        return Err(format!("a retry delay is at most {MAX_DELAY_SECS} s"));
    }
    Ok(())
}

/// A network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network like 127.0.0.1/32"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl WebhooksConfig {
    pub fn validate(&self) -> Result<(), String> {
        check_schedule(&self.retry_schedule_secs)
            .map_err(|e| format!("webhooks.retry_schedule_secs: {e}"))?;
        if !(0.0..1.0).contains(&self.jitter) {
            return Err("webhooks.jitter must be in [0, 1)".into());
        }
        if self.concurrency == 0 {
            return Err("webhooks.concurrency must be at least 1".into());
        }
        if self.max_endpoints_per_partner == 0 || self.max_replay == 0 {
            return Err(
                "webhooks.max_endpoints_per_partner and webhooks.max_replay must be at least 1"
                    .into(),
            );
        }
        self.networks().map(|_| ())
    }

    pub fn networks(&self) -> Result<Vec<Network>, String> {
        self.allow_networks
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e| format!("webhooks.allow_networks: {e}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n: Network = "127.0.0.0/8".parse().unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("10.0.0.1".parse().unwrap()));
        assert!("::1/129".parse::<Network>().is_err());
        assert!("localhost".parse::<Network>().is_err());
    }

    #[test]
    fn the_default_schedule_is_svix_like() {
        let c = WebhooksConfig::default();
        assert_eq!(c.retry_schedule_secs.len(), 8);
        assert_eq!(c.retry_schedule_secs[0], 0);
        assert!(check_schedule(&[]).is_err());
        assert!(check_schedule(&[0, 100_000]).is_err());
        assert!(c.validate().is_ok());
    }
}
