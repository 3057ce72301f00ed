//! `/api/admin/partners`: partners and their API keys, managed by the admin. A partner has a
//! tier and the events it may see; its key is shown once, rotated with an optional grace
//! period, revoked with the partner.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::auth::{Key, Tier};
use crate::body;
use crate::problem::Problem;
use crate::problem::answers::{NotFound, Unprocessable};
use crate::read::{Client, column, parsed};
use crate::route::{Ctx, Route, any, location, route};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPartner {
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
}

/// The answer to creating a partner: the only time its key is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPartner {
    pub partner_id: uuid::Uuid,
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
    pub api_key: String,
    pub key_prefix: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotate {
    /// How long the previous keys keep working, so the partner can switch without downtime.
    #[serde(default)]
    pub grace_seconds: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKey {
    pub partner_id: uuid::Uuid,
    pub api_key: String,
    pub key_prefix: String,
    pub previous_keys_valid_for_seconds: u32,
}

/// A key as listings show it: never the key, only its first characters.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    /// When it stopped or stops working (rotation grace), if ever.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerList {
    pub partners: Vec<PartnerInfo>,
}

/// The `{id}` of a partner's routes.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct PartnerId(
    /// The partner's id
    uuid::Uuid,
);

fn invalid(detail: &str) -> Problem {
    Problem::unprocessable("invalid-partner", "The partner is invalid", detail)
}

/// Runs `sql` (`$1`: the partner id) on the row of an active partner, which it must touch:
/// none touched is a 404. Returns the id as stored.
async fn on_active(db: &impl GenericClient, id: uuid::Uuid, sql: &str) -> Result<String, Problem> {
    let partner = id.to_string();
    if db.execute(sql, &[&partner]).await? == 0 {
        return Err(Problem::not_found(
            "No such partner",
            format!("no active partner {id}"),
        ));
    }
    Ok(partner)
}

/// Ends the partner's keys `grace_seconds` from now (keys already ending sooner keep their
/// time): 0 on revocation, the rotation's grace otherwise.
async fn revoke_keys(
    db: &impl GenericClient,
    partner: &str,
    grace_seconds: u32,
) -> Result<(), Problem> {
    db.execute(
        "UPDATE api_keys SET revoked_at = now() + make_interval(secs => $2)
         WHERE partner_id = $1 AND (revoked_at IS NULL OR revoked_at > now() + make_interval(secs => $2))",
        &[&partner, &(grace_seconds as f64)],
    )
    .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/admin/partners", tag = "admin",
    request_body = NewPartner,
    responses(
        (status = 201, body = CreatedPartner, description = "Created; the API key is shown this once"),
        Unprocessable,
    ))]
async fn create(db: Client, body: NewPartner) -> Result<warp::reply::Response, Problem> {
    if body.name.trim().is_empty() {
        return Err(invalid("name must not be empty"));
    }
    if body.event_ids.iter().any(|e| e.trim().is_empty()) {
        return Err(invalid("eventIds must not contain empty ids"));
    }
    let id = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO partners (partner_id, name, tier, event_ids) VALUES ($1, $2, $3, $4)",
        &[
            &id.to_string(),
            &body.name,
            &body.tier.as_str(),
            &body.event_ids,
        ],
    )
    .await?;
    let key = Key::insert(&db, id).await?;
    tracing::info!(partner = %id, name = %body.name, tier = body.tier.as_str(), "partner created");
    let reply = warp::reply::json(&CreatedPartner {
        partner_id: id,
        name: body.name,
        tier: body.tier,
        event_ids: body.event_ids,
        api_key: key.key,
        key_prefix: key.prefix,
    });
    Ok(warp::reply::with_header(
        warp::reply::with_status(reply, StatusCode::CREATED),
        "location",
        location!(revoke, id),
    )
    .into_response())
}

#[utoipa::path(post, path = "/api/admin/partners/{id}/rotate", tag = "admin",
    params(PartnerId),
    request_body = Option<Rotate>,
    responses((status = 200, body = RotatedKey), NotFound, Unprocessable))]
async fn rotate(id: uuid::Uuid, mut db: Client, body: Rotate) -> Result<impl Reply, Problem> {
    // One transaction: the old keys' grace and the new key land together, or neither does
    // (a failure in between must not leave a partner with every key revoked).
    let tx = db.transaction().await?;
    let lock = "SELECT 1 FROM partners WHERE partner_id = $1 AND revoked_at IS NULL FOR UPDATE";
    let partner = on_active(&tx, id, lock).await?;
    revoke_keys(&tx, &partner, body.grace_seconds).await?;
    let key = Key::insert(&tx, id).await?;
    tx.commit().await?;
    tracing::info!(partner = %id, grace_seconds = body.grace_seconds, "API key rotated");
    Ok(warp::reply::json(&RotatedKey {
        partner_id: id,
        api_key: key.key,
        key_prefix: key.prefix,
        previous_keys_valid_for_seconds: body.grace_seconds,
    }))
}

#[utoipa::path(delete, path = "/api/admin/partners/{id}", tag = "admin",
    params(PartnerId),
    responses((status = 204, description = "Revoked with all its keys"), NotFound))]
async fn revoke(id: uuid::Uuid, db: Client) -> Result<impl Reply, Problem> {
    let revoke =
        "UPDATE partners SET revoked_at = now() WHERE partner_id = $1 AND revoked_at IS NULL";
    let partner = on_active(&db, id, revoke).await?;
    revoke_keys(&db, &partner, 0).await?;
    tracing::info!(partner = %id, "partner revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/partners`: every partner with its keys' prefixes and states.
#[utoipa::path(get, path = "/api/admin/partners", tag = "admin",
    responses((status = 200, body = PartnerList)))]
async fn list(db: Client) -> Result<impl Reply, Problem> {
    let rows = db
        .query(
            "SELECT p.partner_id, p.name, p.tier, p.event_ids, p.created_at, p.revoked_at,
                    coalesce(json_agg(json_build_object(
                        'keyPrefix', k.key_prefix, 'createdAt', k.created_at,
                        'revokedAt', k.revoked_at) ORDER BY k.created_at)
                      FILTER (WHERE k.key_hash IS NOT NULL), '[]') AS keys
             FROM partners p LEFT JOIN api_keys k USING (partner_id)
             GROUP BY p.partner_id ORDER BY p.created_at, p.partner_id",
            &[],
        )
        .await?;
    let partners = rows
        .iter()
        .map(|r| {
            let keys: serde_json::Value = column(r, "keys")?;
            Ok(PartnerInfo {
                partner_id: column(r, "partner_id")?,
                name: column(r, "name")?,
                tier: parsed(r, "tier")?,
                event_ids: column(r, "event_ids")?,
                created_at: column(r, "created_at")?,
                revoked_at: column(r, "revoked_at")?,
                keys: serde_json::from_value(keys)
                    .map_err(|e| Problem::internal(format!("api key listing: {e}")))?,
            })
        })
        .collect::<Result<_, Problem>>()?;
    Ok(warp::reply::json(&PartnerList { partners }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, rotate, revoke))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    any([
        route!(create, ctx.auth.admin(), ctx.db(), body::json()),
        route!(
            rotate(id),
            ctx.auth.admin(),
            ctx.db(),
            body::optional_json()
        ),
        route!(revoke(id), ctx.auth.admin(), ctx.db()),
        route!(list, ctx.auth.admin(), ctx.db()),
    ])
}
