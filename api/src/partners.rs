//! Partners and their API keys: created by the admin with a tier and the events they may see;
//! a key is shown once, stored only as its SHA-256 (a key is 256 random bits, so a fast hash
//! is enough and the lookup by hash leaks nothing about other keys), rotated with an optional
//! grace period, revoked. Partner routes check the key, the event grant, and the tier's rate
//! limit.

use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use muster_runtime::migrate::Migrations;
use serde::{Deserialize, Serialize};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Partner,
    Premium,
}

impl Tier {
    fn from_db(s: &str) -> Self {
        if s == "premium" {
            Self::Premium
        } else {
            Self::Partner
        }
    }

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

    /// 403 unless the event was granted to this partner.
    pub fn check(&self, event_id: &str) -> Result<(), warp::Rejection> {
        if self.may_see(event_id) {
            Ok(())
        } else {
            Err(forbidden(event_id))
        }
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

    pub(crate) fn check(&self, p: &Partner) -> Result<(), Problem> {
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

pub(crate) fn unavailable(e: impl std::fmt::Display) -> warp::Rejection {
    warp::reject::custom(Problem::unavailable(&e))
}

/// Passes a partner whose `x-api-key` is valid and within its rate limit.
pub fn require_partner(
    pool: deadpool_postgres::Pool,
    limits: Limits,
) -> impl Filter<Extract = (Partner,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("x-api-key").and_then(move |key: Option<String>| {
        let (pool, limits) = (pool.clone(), limits.clone());
        async move { authenticate(&pool, &limits, key).await }
    })
}

/// Passes a partner of the premium tier; a partner-tier key gets 403.
pub fn require_premium(
    pool: deadpool_postgres::Pool,
    limits: Limits,
) -> impl Filter<Extract = (Partner,), Error = warp::Rejection> + Clone {
    require_partner(pool, limits).and_then(|p: Partner| async move {
        if p.tier == Tier::Premium {
            Ok(p)
        } else {
            Err(warp::reject::custom(
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "premium-required",
                    "This route needs a premium API key",
                )
                .detail("the partner tier does not include premium routes"),
            ))
        }
    })
}

/// Who reads a route open to partners and the admin: the admin sees every event.
#[derive(Debug, Clone)]
pub enum Viewer {
    Admin,
    Partner(Partner),
}

impl Viewer {
    /// The events this viewer may see, `None` meaning all of them.
    pub fn event_ids(&self) -> Option<&[String]> {
        match self {
            Self::Admin => None,
            Self::Partner(p) => Some(&p.event_ids),
        }
    }

    pub fn may_see(&self, event_id: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Partner(p) => p.may_see(event_id),
        }
    }

    /// 403 unless the viewer may see the event.
    pub fn check(&self, event_id: &str) -> Result<(), warp::Rejection> {
        match self {
            Self::Admin => Ok(()),
            Self::Partner(p) => p.check(event_id),
        }
    }
}

/// The admin when an `Authorization` header is sent (and right), else a partner by `x-api-key`.
pub fn require_viewer(
    admin_token: Option<String>,
    pool: deadpool_postgres::Pool,
    limits: Limits,
) -> impl Filter<Extract = (Viewer,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("x-api-key"))
        .and_then(move |auth: Option<String>, key: Option<String>| {
            let (pool, limits, token) = (pool.clone(), limits.clone(), admin_token.clone());
            async move {
                match auth {
                    Some(header) => crate::admin::check_admin(token.as_deref(), Some(&header))
                        .map(|()| Viewer::Admin)
                        .map_err(warp::reject::custom),
                    None => authenticate(&pool, &limits, key).await.map(Viewer::Partner),
                }
            }
        })
}

async fn authenticate(
    pool: &deadpool_postgres::Pool,
    limits: &Limits,
    key: Option<String>,
) -> Result<Partner, warp::Rejection> {
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
    let Some(partner) = lookup(pool, &key).await.map_err(unavailable)? else {
        return Err(warp::reject::custom(Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-api-key",
            "The API key is unknown or revoked",
        )));
    };
    limits.check(&partner).map_err(warp::reject::custom)?;
    Ok(partner)
}

/// The partner holding `key`, if it is a live key of a live partner (no rate limit applied).
pub(crate) async fn lookup(
    pool: &deadpool_postgres::Pool,
    key: &str,
) -> anyhow::Result<Option<Partner>> {
    let client = pool.get().await?;
    // Prepared once per connection: every partner request runs this.
    let stmt = client
        .prepare_cached(
            "SELECT p.partner_id, p.name, p.tier, p.event_ids
             FROM api_keys k JOIN partners p USING (partner_id)
             WHERE k.key_hash = $1 AND p.revoked_at IS NULL
               AND (k.revoked_at IS NULL OR k.revoked_at > now())",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&hash(key)]).await? else {
        return Ok(None);
    };
    Ok(Some(Partner {
        id: row.get::<_, String>(0).parse()?,
        name: row.get(1),
        tier: Tier::from_db(row.get(2)),
        event_ids: row.get(3),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
    client: &impl deadpool_postgres::GenericClient,
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

#[utoipa::path(post, path = "/api/admin/partners", tag = "admin",
    security(("admin_token" = [])),
    request_body = NewPartner,
    responses(
        (status = 201, body = CreatedPartner, description = "Created; the API key is shown this once"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
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
    let reply = warp::reply::json(&CreatedPartner {
        partner_id: id,
        name: body.name,
        tier: body.tier,
        event_ids: body.event_ids,
        api_key: key,
        key_prefix: prefix,
    });
    Ok(warp::reply::with_header(
        warp::reply::with_status(reply, StatusCode::CREATED),
        "location",
        format!("/api/admin/partners/{id}"),
    )
    .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotate {
    /// How long the previous keys keep working, so the partner can switch without downtime.
    #[serde(default)]
    pub grace_seconds: u32,
}

#[utoipa::path(post, path = "/api/admin/partners/{id}/rotate", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The partner's id")),
    request_body = Option<Rotate>,
    responses(
        (status = 200, body = RotatedKey),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    id: uuid::Uuid,
    pool: deadpool_postgres::Pool,
    body: Rotate,
) -> Result<impl warp::Reply, warp::Rejection> {
    // One transaction: the old keys' grace and the new key land together, or neither does
    // (a failure in between must not leave a partner with every key revoked).
    let mut client = pool.get().await.map_err(unavailable)?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let key = id.to_string();
    let active = tx
        .execute(
            "SELECT 1 FROM partners WHERE partner_id = $1 AND revoked_at IS NULL FOR UPDATE",
            &[&key],
        )
        .await
        .map_err(unavailable)?;
    if active == 0 {
        return Err(no_partner(id));
    }
    let grace = body.grace_seconds as f64;
    tx.execute(
        "UPDATE api_keys SET revoked_at = now() + make_interval(secs => $2)
         WHERE partner_id = $1 AND (revoked_at IS NULL OR revoked_at > now() + make_interval(secs => $2))",
        &[&key, &grace],
    )
    .await
    .map_err(unavailable)?;
    let (key, prefix) = insert_key(&tx, id).await?;
    tx.commit().await.map_err(unavailable)?;
    tracing::info!(partner = %id, grace_seconds = body.grace_seconds, "API key rotated");
    Ok(warp::reply::json(&RotatedKey {
        partner_id: id,
        api_key: key,
        key_prefix: prefix,
        previous_keys_valid_for_seconds: body.grace_seconds,
    }))
}

#[utoipa::path(delete, path = "/api/admin/partners/{id}", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The partner's id")),
    responses(
        (status = 204, description = "Revoked with all its keys"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
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

pub(crate) fn forbidden(event_id: &str) -> warp::Rejection {
    warp::reject::custom(
        Problem::new(
            StatusCode::FORBIDDEN,
            "event-not-granted",
            "This API key may not see this event",
        )
        .detail(format!("event {event_id} was not granted to this partner")),
    )
}

/// One event a partner may see, with its latest numbers (absent before the first snapshot).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerEvent {
    pub event_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub capacity: Option<i64>,
    pub status: Option<String>,
    pub total_registered: Option<i64>,
    pub current_attendees: Option<i64>,
    pub attendance_rate: Option<f64>,
    pub fetched_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerEvents {
    pub events: Vec<PartnerEvent>,
}

/// `GET /api/partner/events`: the partner's events with their latest numbers.
#[utoipa::path(get, path = "/api/partner/events", tag = "partner",
    security(("api_key" = [])),
    responses(
        (status = 200, body = PartnerEvents),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn events(
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<PartnerEvents, warp::Rejection> {
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
    let events = rows
        .iter()
        .map(|r| PartnerEvent {
            event_id: r.get(0),
            name: r.get(1),
            event_type: r.get(2),
            capacity: r.get(3),
            status: r.get(4),
            total_registered: r.get(5),
            current_attendees: r.get(6),
            attendance_rate: r.get(7),
            fetched_at: r.get(8),
        })
        .collect();
    Ok(PartnerEvents { events })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Realtime {
    pub status: String,
    pub total_registered: i64,
    pub current_attendees: i64,
    pub attendance_rate: f64,
    pub observed_at: DateTime<Utc>,
    pub fetched_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinutePoint {
    pub minute: DateTime<Utc>,
    pub samples: i64,
    pub attendees_max: i64,
    pub attendees_min: i64,
    pub attendees_last: i64,
    pub attendance_rate_avg: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attendance {
    pub event_id: String,
    /// Absent until the event's first snapshot is projected.
    pub realtime: Option<Realtime>,
    /// The last hour, by minute.
    pub series: Vec<MinutePoint>,
}

/// `GET /api/partner/events/{eventId}/attendance`: realtime numbers and the last hour by minute.
#[utoipa::path(get, path = "/api/partner/events/{eventId}/attendance", tag = "partner",
    security(("api_key" = [])),
    params(("eventId" = String, Path, description = "The event's id")),
    responses(
        (status = 200, body = Attendance),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "The event was not granted to this partner"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn attendance(
    event_id: String,
    partner: Partner,
    pool: deadpool_postgres::Pool,
) -> Result<Attendance, warp::Rejection> {
    partner.check(&event_id)?;
    let client = pool.get().await.map_err(unavailable)?;
    let (realtime, series) = tokio::try_join!(
        client.prepare_cached(
            "SELECT status, total_registered, current_attendees, attendance_rate, observed_at,
                    fetched_at
             FROM event_realtime WHERE event_id = $1",
        ),
        client.prepare_cached(
            "SELECT bucket, samples, attendees_max, attendees_min, last_attendees,
                    rate_sum / samples
             FROM event_series_minute
             WHERE event_id = $1 AND bucket >= now() - interval '60 minutes'
             ORDER BY bucket",
        ),
    )
    .map_err(unavailable)?;
    // Both queries go out on the connection at once (tokio-postgres pipelines them).
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&event_id];
    let (realtime, series) = tokio::try_join!(
        client.query_opt(&realtime, &params),
        client.query(&series, &params),
    )
    .map_err(unavailable)?;
    Ok(Attendance {
        realtime: realtime.map(|r| Realtime {
            status: r.get(0),
            total_registered: r.get(1),
            current_attendees: r.get(2),
            attendance_rate: r.get(3),
            observed_at: r.get(4),
            fetched_at: r.get(5),
        }),
        series: series
            .iter()
            .map(|r| MinutePoint {
                minute: r.get(0),
                samples: r.get(1),
                attendees_max: r.get(2),
                attendees_min: r.get(3),
                attendees_last: r.get(4),
                attendance_rate_avg: r.get(5),
            })
            .collect(),
        event_id,
    })
}

/// The answer to creating a partner: the only time its key is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPartner {
    pub partner_id: uuid::Uuid,
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
    pub api_key: String,
    pub key_prefix: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKey {
    pub partner_id: uuid::Uuid,
    pub api_key: String,
    pub key_prefix: String,
    pub previous_keys_valid_for_seconds: u32,
}

/// A key as listings show it: never the key, only its first characters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    /// When it stopped or stops working (rotation grace), if ever.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerInfo {
    pub partner_id: String,
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartnerList {
    pub partners: Vec<PartnerInfo>,
}

/// `GET /api/admin/partners`: every partner with its keys' prefixes and states.
#[utoipa::path(get, path = "/api/admin/partners", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = PartnerList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(pool: deadpool_postgres::Pool) -> Result<PartnerList, warp::Rejection> {
    let client = pool.get().await.map_err(unavailable)?;
    let rows = client
        .query(
            "SELECT p.partner_id, p.name, p.tier, p.event_ids, p.created_at, p.revoked_at,
                    coalesce(json_agg(json_build_object(
                        'keyPrefix', k.key_prefix, 'createdAt', k.created_at,
                        'revokedAt', k.revoked_at) ORDER BY k.created_at)
                      FILTER (WHERE k.key_hash IS NOT NULL), '[]')
             FROM partners p LEFT JOIN api_keys k USING (partner_id)
             GROUP BY p.partner_id ORDER BY p.created_at, p.partner_id",
            &[],
        )
        .await
        .map_err(unavailable)?;
    let mut partners = Vec::with_capacity(rows.len());
    for r in &rows {
        let keys: serde_json::Value = r.get(6);
        let keys = keys
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| {
                Some(KeyInfo {
                    key_prefix: k["keyPrefix"].as_str()?.to_owned(),
                    created_at: k["createdAt"].as_str()?.parse().ok()?,
                    revoked_at: k["revokedAt"].as_str().and_then(|t| t.parse().ok()),
                })
            })
            .collect();
        partners.push(PartnerInfo {
            partner_id: r.get(0),
            name: r.get(1),
            tier: Tier::from_db(r.get(2)),
            event_ids: r.get(3),
            created_at: r.get(4),
            revoked_at: r.get(5),
            keys,
        });
    }
    Ok(PartnerList { partners })
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
