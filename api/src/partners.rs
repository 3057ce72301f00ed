//! Partners and their API keys: created by the admin with a tier and the events they may see;
//! a key is shown once, stored only as its SHA-256 (a key is 256 random bits, so a fast hash
//! is enough and the lookup by hash leaks nothing about other keys), rotated with an optional
//! grace period, revoked. Partner routes check the key, the event grant, and the tier's rate
//! limit.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use muster_runtime::migrate::Migrations;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::StatusCode;

use crate::problem::Problem;

pub static MIGRATIONS: Migrations = Migrations {
    component: "api",
    steps: &["CREATE TABLE partners (
            partner_id text PRIMARY KEY,
            name text NOT NULL,
            tier text NOT NULL CHECK (tier IN ('partner', 'premium')),
            event_ids text[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz);
         CREATE TABLE api_keys (
            key_hash bytea PRIMARY KEY,
            partner_id text NOT NULL REFERENCES partners ON DELETE CASCADE,
            key_prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz)"],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Partner,
    Premium,
}

impl Tier {
    fn as_str(self) -> &'static str {
        match self {
            Self::Partner => "partner",
            Self::Premium => "premium",
        }
    }
}

/// The caller of a partner route, once its key checked out.
#[derive(Debug, Clone)]
pub struct Partner {
    pub id: uuid::Uuid,
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
}

impl Partner {
    pub fn may_see(&self, event_id: &str) -> bool {
        self.event_ids.iter().any(|e| e == event_id)
    }
}

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
        }
    }

    fn check(&self, p: &Partner) -> Result<(), Problem> {
        let (limiter, burst) = match p.tier {
            Tier::Partner => (&self.partner, self.partner_burst),
            Tier::Premium => (&self.premium, self.premium_burst),
        };
        match limiter.check_key(&p.id) {
            Ok(_) => Ok(()),
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

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// A new key: `mk_` and 256 random bits in hex. Its first characters identify it in listings.
fn new_key() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("mk_{hex}");
    let prefix = key[..11].to_owned();
    (key, prefix)
}

fn unavailable(e: impl std::fmt::Display) -> warp::Rejection {
    warp::reject::custom(Problem::unavailable(&e))
}

/// Passes a partner whose `x-api-key` is valid and within its rate limit.
pub fn require_partner(
    pool: deadpool_postgres::Pool,
    limits: Limits,
) -> impl Filter<Extract = (Partner,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("x-api-key").and_then(move |key: Option<String>| {
        let (pool, limits) = (pool.clone(), limits.clone());
        async move {
            let Some(key) = key.filter(|k| !k.is_empty()) else {
                return Err(warp::reject::custom(
                    Problem::new(
                        StatusCode::UNAUTHORIZED,
                        "missing-api-key",
                        "An API key is required",
                    )
                    .detail("send it in the x-api-key header"),
                ));
            };
            let client = pool.get().await.map_err(unavailable)?;
            let row = client
                .query_opt(
                    "SELECT p.partner_id, p.name, p.tier, p.event_ids
                     FROM api_keys k JOIN partners p USING (partner_id)
                     WHERE k.key_hash = $1 AND p.revoked_at IS NULL
                       AND (k.revoked_at IS NULL OR k.revoked_at > now())",
                    &[&hash(&key)],
                )
                .await
                .map_err(unavailable)?;
            let Some(row) = row else {
                return Err(warp::reject::custom(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid-api-key",
                    "The API key is unknown or revoked",
                )));
            };
            let tier: String = row.get(2);
            let partner = Partner {
                id: row.get::<_, String>(0).parse().map_err(unavailable)?,
                name: row.get(1),
                tier: if tier == "premium" {
                    Tier::Premium
                } else {
                    Tier::Partner
                },
                event_ids: row.get(3),
            };
            limits.check(&partner).map_err(warp::reject::custom)?;
            Ok(partner)
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPartner {
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
}

fn invalid(detail: impl Into<String>) -> warp::Rejection {
    warp::reject::custom(
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-partner",
            "The partner is invalid",
        )
        .detail(detail),
    )
}

async fn insert_key(
    client: &deadpool_postgres::Object,
    partner: uuid::Uuid,
) -> Result<(String, String), warp::Rejection> {
    let (key, prefix) = new_key();
    client
        .execute(
            "INSERT INTO api_keys (key_hash, partner_id, key_prefix) VALUES ($1, $2, $3)",
            &[&hash(&key), &partner.to_string(), &prefix],
        )
        .await
        .map_err(unavailable)?;
    Ok((key, prefix))
}

pub async fn create(
    pool: deadpool_postgres::Pool,
    body: NewPartner,
) -> Result<warp::reply::Response, warp::Rejection> {
    use warp::Reply;
    if body.name.trim().is_empty() {
        return Err(invalid("name must not be empty"));
    }
    if body.event_ids.iter().any(|e| e.trim().is_empty()) {
        return Err(invalid("eventIds must not contain empty ids"));
    }
    let id = uuid::Uuid::new_v4();
    let client = pool.get().await.map_err(unavailable)?;
    client
        .execute(
            "INSERT INTO partners (partner_id, name, tier, event_ids) VALUES ($1, $2, $3, $4)",
            &[
                &id.to_string(),
                &body.name,
                &body.tier.as_str(),
                &body.event_ids,
            ],
        )
        .await
        .map_err(unavailable)?;
    let (key, prefix) = insert_key(&client, id).await?;
    tracing::info!(partner = %id, name = %body.name, tier = body.tier.as_str(), "partner created");
    let reply = warp::reply::json(&json!({
        "partnerId": id,
        "name": body.name,
        "tier": body.tier,
        "eventIds": body.event_ids,
        "apiKey": key,
        "keyPrefix": prefix,
    }));
    Ok(warp::reply::with_header(
        warp::reply::with_status(reply, StatusCode::CREATED),
        "location",
        format!("/api/admin/partners/{id}"),
    )
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotate {
    /// How long the previous keys keep working, so the partner can switch without downtime.
    #[serde(default)]
    pub grace_seconds: u32,
}

pub async fn rotate(
    id: uuid::Uuid,
    pool: deadpool_postgres::Pool,
    body: Rotate,
) -> Result<impl warp::Reply, warp::Rejection> {
    let client = pool.get().await.map_err(unavailable)?;
    let key = id.to_string();
    let active = client
        .execute(
            "SELECT 1 FROM partners WHERE partner_id = $1 AND revoked_at IS NULL",
            &[&key],
        )
        .await
        .map_err(unavailable)?;
    if active == 0 {
        return Err(no_partner(id));
    }
    let grace = body.grace_seconds as f64;
    client
        .execute(
            "UPDATE api_keys SET revoked_at = now() + make_interval(secs => $2)
             WHERE partner_id = $1 AND (revoked_at IS NULL OR revoked_at > now() + make_interval(secs => $2))",
            &[&key, &grace],
        )
        .await
        .map_err(unavailable)?;
    let (key, prefix) = insert_key(&client, id).await?;
    tracing::info!(partner = %id, grace_seconds = body.grace_seconds, "API key rotated");
    Ok(warp::reply::json(&json!({
        "partnerId": id,
        "apiKey": key,
        "keyPrefix": prefix,
        "previousKeysValidForSeconds": body.grace_seconds,
    })))
}

pub async fn revoke(
    id: uuid::Uuid,
    pool: deadpool_postgres::Pool,
) -> Result<impl warp::Reply, warp::Rejection> {
    let client = pool.get().await.map_err(unavailable)?;
    let key = id.to_string();
    let n = client
        .execute(
            "UPDATE partners SET revoked_at = now() WHERE partner_id = $1 AND revoked_at IS NULL",
            &[&key],
        )
        .await
        .map_err(unavailable)?;
    if n == 0 {
        return Err(no_partner(id));
    }
    client
        .execute(
            "UPDATE api_keys SET revoked_at = now()
             WHERE partner_id = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            &[&key],
        )
        .await
        .map_err(unavailable)?;
    tracing::info!(partner = %id, "partner revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn no_partner(id: uuid::Uuid) -> warp::Rejection {
    warp::reject::custom(
        Problem::new(StatusCode::NOT_FOUND, "not-found", "No such partner")
            .detail(format!("no active partner {id}")),
    )
}

fn forbidden(event_id: &str) -> warp::Rejection {
    warp::reject::custom(
        Problem::new(
            StatusCode::FORBIDDEN,
            "event-not-granted",
            "This API key may not see this event",
        )
        .detail(format!("event {event_id} was not granted to this partner")),
    )
}

/// `GET /api/partner/events`: the partner's events with their latest numbers.
pub async fn events(
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<impl warp::Reply, warp::Rejection> {
    let client = pool.get().await.map_err(unavailable)?;
    let rows = client
        .query(
            "SELECT c.event_id, c.name, c.event_type, c.capacity, r.status,
                    r.total_registered, r.current_attendees, r.attendance_rate, r.fetched_at
             FROM event_catalogue c LEFT JOIN event_realtime r USING (event_id)
             WHERE NOT c.removed AND c.event_id = ANY($1)
             ORDER BY c.event_id",
            &[&partner.event_ids],
        )
        .await
        .map_err(unavailable)?;
    let events: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "eventId": r.get::<_, String>(0),
                "name": r.get::<_, String>(1),
                "type": r.get::<_, String>(2),
                "capacity": r.get::<_, Option<i64>>(3),
                "status": r.get::<_, Option<String>>(4),
                "totalRegistered": r.get::<_, Option<i64>>(5),
                "currentAttendees": r.get::<_, Option<i64>>(6),
                "attendanceRate": r.get::<_, Option<f64>>(7),
                "fetchedAt": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(8),
            })
        })
        .collect();
    Ok(warp::reply::json(&json!({ "events": events })))
}

/// `GET /api/partner/events/{eventId}/attendance`: realtime numbers and the last hour by minute.
pub async fn attendance(
    event_id: String,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<impl warp::Reply, warp::Rejection> {
    if !partner.may_see(&event_id) {
        return Err(forbidden(&event_id));
    }
    let client = pool.get().await.map_err(unavailable)?;
    let realtime = client
        .query_opt(
            "SELECT status, total_registered, current_attendees, attendance_rate, observed_at,
                    fetched_at
             FROM event_realtime WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .map_err(unavailable)?;
    let series = client
        .query(
            "SELECT bucket, samples, attendees_max, attendees_min, last_attendees,
                    rate_sum / samples
             FROM event_series_minute
             WHERE event_id = $1 AND bucket >= now() - interval '60 minutes'
             ORDER BY bucket",
            &[&event_id],
        )
        .await
        .map_err(unavailable)?;
    let realtime = realtime.map(|r| {
        json!({
            "status": r.get::<_, String>(0),
            "totalRegistered": r.get::<_, i64>(1),
            "currentAttendees": r.get::<_, i64>(2),
            "attendanceRate": r.get::<_, f64>(3),
            "observedAt": r.get::<_, chrono::DateTime<chrono::Utc>>(4),
            "fetchedAt": r.get::<_, chrono::DateTime<chrono::Utc>>(5),
        })
    });
    let series: Vec<_> = series
        .iter()
        .map(|r| {
            json!({
                "minute": r.get::<_, chrono::DateTime<chrono::Utc>>(0),
                "samples": r.get::<_, i64>(1),
                "attendeesMax": r.get::<_, i64>(2),
                "attendeesMin": r.get::<_, i64>(3),
                "attendeesLast": r.get::<_, i64>(4),
                "attendanceRateAvg": r.get::<_, f64>(5),
            })
        })
        .collect();
    Ok(warp::reply::json(&json!({
        "eventId": event_id,
        "realtime": realtime,
        "series": series,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let (a, pa) = new_key();
        let (b, _) = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("mk_") && a.len() == 67);
        assert!(a.starts_with(&pa));
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }

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
        };
        for _ in 0..3 {
            assert!(limits.check(&p).is_ok());
        }
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
