//! `/api/admin/partners`: partners and their API keys, managed by the admin. A partner has a
//! tier and the events it may see; its key is shown once, rotated with an optional grace
//! period, revoked with the partner.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::audit::{self, Action, Actor};
use crate::auth::{Key, Keys, Tier};
use crate::body;
use crate::problem::Problem;
use crate::problem::answers::{BadRequest, NotFound, Unprocessable};
use crate::read::{Client, column, parsed};
use crate::route::{Ctx, Route, any, location, route, with};

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

impl Rotate {
    /// A rotation as a page's form gives it: the grace in seconds, empty for none.
    pub fn from_form(grace: &str) -> Result<Self, Problem> {
        let grace_seconds = match grace.trim() {
            "" => 0,
            g => g.parse().map_err(|_| {
                Problem::unprocessable(
                    "invalid-rotation",
                    "The rotation is invalid",
                    "the grace must be a whole number of seconds",
                )
            })?,
        };
        Ok(Self { grace_seconds })
    }
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

/// `PUT /api/admin/partners/{id}/events`: the whole list, as a partner-management client
/// keeps it (idempotent: sending the same list twice changes nothing the second time).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grants {
    pub event_ids: Vec<String>,
}

/// The partner's events after a change of grants, and what the change added and removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantsChanged {
    pub partner_id: uuid::Uuid,
    pub event_ids: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Sets an active partner's events to `wanted` (duplicates dropped, order kept), in one
/// transaction with its audit entries (one `partner-grant` for what was added, one
/// `partner-revoke-grant` for what was removed). A new id must name a known event: registered
/// with a service (`services`) or in the catalogue (`event_catalogue`, which keeps removed
/// events, so a past event can still be granted for its history). Ids granted already stay
/// allowed whatever became of their event.
pub async fn set_grants(
    db: &mut Client,
    keys: &Keys,
    id: uuid::Uuid,
    wanted: Vec<String>,
) -> Result<GrantsChanged, Problem> {
    let mut event_ids: Vec<String> = Vec::with_capacity(wanted.len());
    for e in wanted {
        if e.trim().is_empty() {
            return Err(invalid("eventIds must not contain empty ids"));
        }
        if !event_ids.contains(&e) {
            event_ids.push(e);
        }
    }
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT event_ids FROM partners WHERE partner_id = $1 AND revoked_at IS NULL FOR UPDATE",
            &[&id.to_string()],
        )
        .await?
        .ok_or_else(|| Problem::not_found("No such partner", format!("no active partner {id}")))?;
    let before: Vec<String> = column(&row, "event_ids")?;
    let added: Vec<String> = event_ids
        .iter()
        .filter(|e| !before.contains(e))
        .cloned()
        .collect();
    let removed: Vec<String> = before
        .iter()
        .filter(|e| !event_ids.contains(e))
        .cloned()
        .collect();
    let unknown: Vec<String> = tx
        .query(
            "SELECT id FROM unnest($1::text[]) AS n(id)
             WHERE NOT EXISTS (SELECT 1 FROM services s WHERE s.event_id = n.id)
               AND NOT EXISTS (SELECT 1 FROM event_catalogue c WHERE c.event_id = n.id)",
            &[&added],
        )
        .await?
        .iter()
        .map(|r| column(r, "id"))
        .collect::<Result<_, Problem>>()?;
    if !unknown.is_empty() {
        return Err(Problem::unprocessable(
            "unknown-event",
            "An event to grant is unknown",
            format!("no registered or catalogued event {}", unknown.join(", ")),
        ));
    }
    tx.execute(
        "UPDATE partners SET event_ids = $2 WHERE partner_id = $1",
        &[&id.to_string(), &event_ids],
    )
    .await?;
    let subject = id.to_string();
    for (action, ids) in [
        (Action::PartnerGrant, &added),
        (Action::PartnerRevokeGrant, &removed),
    ] {
        if !ids.is_empty() {
            let details = serde_json::json!({ "eventIds": ids });
            audit::record(&tx, &Actor::Admin, action, &subject, details).await?;
        }
    }
    tx.commit().await?;
    keys.refresh().await;
    tracing::info!(partner = %id, ?added, ?removed, "grants changed");
    Ok(GrantsChanged {
        partner_id: id,
        event_ids,
        added,
        removed,
    })
}

/// An event that may be granted, with its name, for the admin's forms.
#[derive(Debug, Clone)]
pub struct KnownEvent {
    pub event_id: String,
    pub name: String,
}

/// Every event that may be granted (as [`set_grants`] checks): registered or catalogued and
/// not removed, by id.
pub async fn known_events(db: &impl GenericClient) -> Result<Vec<KnownEvent>, Problem> {
    let rows = db
        .query(
            "SELECT DISTINCT ON (event_id) event_id, name FROM (
                SELECT event_id, name, 0 AS rank FROM services
                UNION ALL
                SELECT event_id, name, 1 FROM event_catalogue WHERE NOT removed) e
             ORDER BY event_id, rank",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KnownEvent {
                event_id: column(r, "event_id")?,
                name: column(r, "name")?,
            })
        })
        .collect()
}

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
async fn create(mut db: Client, body: NewPartner) -> Result<warp::reply::Response, Problem> {
    let created = create_partner(&mut db, body).await?;
    let id = created.partner_id;
    Ok(warp::reply::with_header(
        warp::reply::with_status(warp::reply::json(&created), StatusCode::CREATED),
        "location",
        location!(revoke, id),
    )
    .into_response())
}

/// Creates a partner with its first key, in one transaction with its audit entry: the JSON
/// route's and the admin page's one way in.
pub async fn create_partner(db: &mut Client, body: NewPartner) -> Result<CreatedPartner, Problem> {
    if body.name.trim().is_empty() {
        return Err(invalid("name must not be empty"));
    }
    if body.event_ids.iter().any(|e| e.trim().is_empty()) {
        return Err(invalid("eventIds must not contain empty ids"));
    }
    let id = uuid::Uuid::new_v4();
    let tx = db.transaction().await?;
    tx.execute(
        "INSERT INTO partners (partner_id, name, tier, event_ids) VALUES ($1, $2, $3, $4)",
        &[
            &id.to_string(),
            &body.name,
            &body.tier.as_str(),
            &body.event_ids,
        ],
    )
    .await?;
    let key = Key::insert(&tx, id).await?;
    let details = serde_json::json!({
        "name": body.name, "tier": body.tier, "eventIds": body.event_ids, "keyPrefix": key.prefix,
    });
    audit::record(
        &tx,
        &Actor::Admin,
        Action::PartnerCreate,
        &id.to_string(),
        details,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(partner = %id, name = %body.name, tier = body.tier.as_str(), "partner created");
    Ok(CreatedPartner {
        partner_id: id,
        name: body.name,
        tier: body.tier,
        event_ids: body.event_ids,
        api_key: key.key,
        key_prefix: key.prefix,
    })
}

#[utoipa::path(post, path = "/api/admin/partners/{id}/rotate", tag = "admin",
    params(PartnerId),
    request_body = Option<Rotate>,
    responses((status = 200, body = RotatedKey), NotFound, Unprocessable))]
async fn rotate(
    id: uuid::Uuid,
    mut db: Client,
    keys: Keys,
    body: Rotate,
) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(
        &rotate_key(&mut db, &keys, id, body, &Actor::Admin).await?,
    ))
}

/// A new key for an active partner, the previous ones ending after the grace; `by` the admin
/// or the partner itself (`POST /api/partner/key/rotate`).
pub async fn rotate_key(
    db: &mut Client,
    keys: &Keys,
    id: uuid::Uuid,
    body: Rotate,
    by: &Actor,
) -> Result<RotatedKey, Problem> {
    // One transaction: the old keys' grace and the new key land together, or neither does
    // (a failure in between must not leave a partner with every key revoked).
    let tx = db.transaction().await?;
    let lock = "SELECT 1 FROM partners WHERE partner_id = $1 AND revoked_at IS NULL FOR UPDATE";
    let partner = on_active(&tx, id, lock).await?;
    revoke_keys(&tx, &partner, body.grace_seconds).await?;
    let key = Key::insert(&tx, id).await?;
    let details = serde_json::json!({
        "keyPrefix": key.prefix, "graceSeconds": body.grace_seconds,
    });
    audit::record(&tx, by, Action::PartnerRotate, &partner, details).await?;
    tx.commit().await?;
    keys.refresh().await;
    tracing::info!(partner = %id, grace_seconds = body.grace_seconds, "API key rotated");
    Ok(RotatedKey {
        partner_id: id,
        api_key: key.key,
        key_prefix: key.prefix,
        previous_keys_valid_for_seconds: body.grace_seconds,
    })
}

#[utoipa::path(delete, path = "/api/admin/partners/{id}", tag = "admin",
    params(PartnerId),
    responses((status = 204, description = "Revoked with all its keys"), NotFound))]
async fn revoke(id: uuid::Uuid, mut db: Client, keys: Keys) -> Result<impl Reply, Problem> {
    revoke_partner(&mut db, &keys, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes an active partner and every key of it.
pub async fn revoke_partner(db: &mut Client, keys: &Keys, id: uuid::Uuid) -> Result<(), Problem> {
    let tx = db.transaction().await?;
    let revoke =
        "UPDATE partners SET revoked_at = now() WHERE partner_id = $1 AND revoked_at IS NULL";
    let partner = on_active(&tx, id, revoke).await?;
    revoke_keys(&tx, &partner, 0).await?;
    let details = serde_json::json!({});
    audit::record(&tx, &Actor::Admin, Action::PartnerRevoke, &partner, details).await?;
    tx.commit().await?;
    keys.refresh().await;
    tracing::info!(partner = %id, "partner revoked");
    Ok(())
}

/// `GET /api/admin/partners`: every partner with its keys' prefixes and states.
#[utoipa::path(get, path = "/api/admin/partners", tag = "admin",
    responses((status = 200, body = PartnerList)))]
async fn list(db: Client) -> Result<impl Reply, Problem> {
    let partners = partners(&db).await?;
    Ok(warp::reply::json(&PartnerList { partners }))
}

/// Every partner with its keys, oldest first.
pub async fn partners(db: &impl GenericClient) -> Result<Vec<PartnerInfo>, Problem> {
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
    Ok(partners)
}

#[utoipa::path(put, path = "/api/admin/partners/{id}/events", tag = "admin",
    params(PartnerId),
    request_body = Grants,
    responses(
        (status = 200, body = GrantsChanged, description = "The partner's events are now exactly these"),
        BadRequest,
        NotFound,
        Unprocessable,
    ))]
async fn grant(
    id: uuid::Uuid,
    mut db: Client,
    keys: Keys,
    body: Grants,
) -> Result<impl Reply, Problem> {
    let changed = set_grants(&mut db, &keys, id, body.event_ids).await?;
    Ok(warp::reply::json(&changed))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, rotate, revoke, grant))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    any([
        route!(create, ctx.auth.admin(), ctx.db(), body::json()),
        route!(
            rotate(id),
            ctx.auth.admin(),
            ctx.db(),
            with(ctx.auth.keys()),
            body::optional_json()
        ),
        route!(
            revoke(id),
            ctx.auth.admin(),
            ctx.db(),
            with(ctx.auth.keys())
        ),
        route!(
            grant(id),
            ctx.auth.admin(),
            ctx.db(),
            with(ctx.auth.keys()),
            body::json()
        ),
        route!(list, ctx.auth.admin(), ctx.db()),
    ])
}
