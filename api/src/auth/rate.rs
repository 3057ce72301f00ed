//! Per-key rate limits: token buckets per partner, one set per tier.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::{Partner, Tier};
use crate::problem::Problem;

/// `[api.rate_limits]`: requests per second and burst, per key, per tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub partner_per_second: u32,
    pub partner_burst: u32,
    pub premium_per_second: u32,
    pub premium_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            partner_per_second: 10,
            partner_burst: 20,
            premium_per_second: 50,
            premium_burst: 100,
        }
    }
}

/// A key's rate limit and its use, as the check of one request left it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateUse {
    /// Requests per second the bucket refills with.
    pub per_second: u32,
    /// The most requests at once.
    pub burst: u32,
    /// Requests left in the bucket now (after this one).
    pub remaining: u32,
}

type Limiter = RateLimiter<
    uuid::Uuid,
    DefaultKeyedStateStore<uuid::Uuid>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Token buckets per partner, one set per tier. They live in this process: with N `muster api`
/// processes behind a balancer a partner gets up to N times its limit. Sharing them would cost
/// a round trip to a shared store on every request; see the README.
#[derive(Clone)]
pub struct Limits {
    partner: Arc<Limiter>,
    premium: Arc<Limiter>,
    partner_burst: u32,
    premium_burst: u32,
    partner_per_second: u32,
    premium_per_second: u32,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
    Quota::per_second(nz(per_second)).allow_burst(nz(burst))
}

impl Limits {
    pub fn new(cfg: &RateLimits) -> Self {
        Self {
            partner: Arc::new(
                RateLimiter::keyed(quota(cfg.partner_per_second, cfg.partner_burst))
                    .with_middleware::<StateInformationMiddleware>(),
            ),
            premium: Arc::new(
                RateLimiter::keyed(quota(cfg.premium_per_second, cfg.premium_burst))
                    .with_middleware::<StateInformationMiddleware>(),
            ),
            partner_burst: cfg.partner_burst.max(1),
            premium_burst: cfg.premium_burst.max(1),
            partner_per_second: cfg.partner_per_second.max(1),
            premium_per_second: cfg.premium_per_second.max(1),
        }
    }

    /// Counts a request of `p`: what is left of its limit, or 429.
    pub fn check(&self, p: &Partner) -> Result<RateUse, Problem> {
        let (limiter, burst, per_second) = match p.tier {
            Tier::Partner => (&self.partner, self.partner_burst, self.partner_per_second),
            Tier::Premium => (&self.premium, self.premium_burst, self.premium_per_second),
        };
        match limiter.check_key(&p.id) {
            Ok(state) => Ok(RateUse {
                per_second,
                burst,
                remaining: state.remaining_burst_capacity(),
            }),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests for this API key",
                )
                .detail(format!(
                    "the {} tier allows a burst of {burst}; retry in {secs} s",
                    p.tier.as_str()
                ))
                .header("retry-after", secs.to_string())
                .header("ratelimit-limit", burst.to_string())
                .header("ratelimit-remaining", "0".to_owned())
                .header("ratelimit-reset", secs.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_tier_limit_is_refused_with_retry_after() {
        let limits = Limits::new(&RateLimits {
            partner_per_second: 1,
            partner_burst: 3,
            ..Default::default()
        });
        let p = Partner {
            id: uuid::Uuid::new_v4(),
            name: "p".into(),
            tier: Tier::Partner,
            event_ids: vec![],
            key_prefix: "mk_0123".into(),
            rate: None,
        };
        let left: Vec<u32> = (0..3)
            .map(|_| limits.check(&p).unwrap().remaining)
            .collect();
        assert_eq!(left, [2, 1, 0]);
        let refused = limits.check(&p).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another partner has its own bucket.
        let q = Partner {
            id: uuid::Uuid::new_v4(),
            ..p
        };
        assert!(limits.check(&q).is_ok());
    }
}
