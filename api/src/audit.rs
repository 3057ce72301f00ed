//! The audit log: every admin and partner-management action, with who did it, what, on what,
//! and when. An action that is one PostgreSQL transaction of the API's (partners: create,
//! grants, rotate, revoke) records its entry in that transaction, so the log and the change
//! commit together. Actions another crate's store commits on its own (service registration by
//! the registrar, webhooks by `muster_webhooks`) record theirs right after that commit: a
//! failure to record then is logged at error level and does not undo or fail the action.
//!
//! The JSON route (`GET /api/admin/audit`) and the admin's page both read through [`list`].

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Partner;
use crate::problem::Problem;
use crate::read::{column, parsed};

/// What was done. Kebab-case text on the wire and in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = AuditAction)]
pub enum Action {
    ServiceRegister,
    ServiceUpdate,
    ServiceRemove,
    PartnerCreate,
    PartnerGrant,
    PartnerRevokeGrant,
    PartnerRotate,
    PartnerRevoke,
    WebhookCreate,
    WebhookUpdate,
    WebhookTest,
    WebhookEnable,
    WebhookDelete,
    WebhookRotate,
    WebhookReplay,
}

muster_schemas::text_values!(Action {
    ServiceRegister => "service-register",
    ServiceUpdate => "service-update",
    ServiceRemove => "service-remove",
    PartnerCreate => "partner-create",
    PartnerGrant => "partner-grant",
    PartnerRevokeGrant => "partner-revoke-grant",
    PartnerRotate => "partner-rotate",
    PartnerRevoke => "partner-revoke",
    WebhookCreate => "webhook-create",
    WebhookUpdate => "webhook-update",
    WebhookTest => "webhook-test",
    WebhookEnable => "webhook-enable",
    WebhookDelete => "webhook-delete",
    WebhookRotate => "webhook-rotate",
    WebhookReplay => "webhook-replay",
});

/// Who did it: the admin (one token, no identity beyond it), or a partner through one of its
/// keys (the key's prefix tells which, after a rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[schema(as = AuditActor)]
pub enum Actor {
    Admin,
    Partner {
        #[serde(rename = "partnerId")]
        partner_id: String,
        #[serde(rename = "keyPrefix")]
        key_prefix: String,
    },
}

impl Actor {
    pub fn partner(p: &Partner) -> Self {
        Self::Partner {
            partner_id: p.id.to_string(),
            key_prefix: p.key_prefix.clone(),
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditEntry)]
pub struct Entry {
    /// Increasing with time; what `before` pages by.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: Action,
    /// What it was done to: a partner id, an event id (services), a webhook id.
    pub subject: String,
    /// What changed (granted events, a replay's range…), never a secret.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Records one entry, on `db` (inside the action's transaction when it has one).
pub async fn record(
    db: &impl GenericClient,
    actor: &Actor,
    action: Action,
    subject: &str,
    details: serde_json::Value,
) -> Result<(), Problem> {
    let (partner, prefix) = match actor {
        Actor::Admin => (None, None),
        Actor::Partner {
            partner_id,
            key_prefix,
        } => (Some(partner_id.as_str()), Some(key_prefix.as_str())),
    };
    db.execute(
        "INSERT INTO audit_log (actor_partner_id, actor_key_prefix, action, subject, details)
         VALUES ($1, $2, $3, $4, $5)",
        &[&partner, &prefix, &action.as_str(), &subject, &details],
    )
    .await?;
    Ok(())
}

/// Records an entry for an action another store already committed, on a connection taken
/// now (not held while the action waited on an upstream): a failure is logged (the action
/// stands either way), not answered.
pub async fn record_after(
    pool: &deadpool_postgres::Pool,
    actor: &Actor,
    action: Action,
    subject: &str,
    details: serde_json::Value,
) {
    let recorded = match pool.get().await {
        Ok(db) => record(&db, actor, action, subject, details).await,
        Err(e) => Err(e.into()),
    };
    if let Err(p) = recorded {
        tracing::error!(action = action.as_str(), subject, problem = ?p, "audit entry not recorded");
    }
}

/// Who to list: `admin`, or a partner's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorFilter {
    Admin,
    Partner(uuid::Uuid),
}

impl std::str::FromStr for ActorFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "admin" {
            return Ok(Self::Admin);
        }
        s.parse()
            .map(Self::Partner)
            .map_err(|_| format!("actor must be `admin` or a partner id, not {s:?}"))
    }
}

/// `GET /api/admin/audit`'s query, also the page's filter form.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Query {
    /// Only this action.
    pub action: Option<Action>,
    /// Only this actor: `admin`, or a partner's id.
    pub actor: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Only entries older than this id (the previous page's `nextBefore`).
    pub before: Option<i64>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A page of the log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AuditPage)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// The `before` of the next (older) page, if there is one.
    pub next_before: Option<i64>,
}

/// The entries `q` selects, newest first.
pub async fn list(db: &impl GenericClient, q: &Query) -> Result<Page, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_query("limit must be between 1 and 500"));
    }
    let actor = q
        .actor
        .as_deref()
        .map(str::parse::<ActorFilter>)
        .transpose()
        .map_err(Problem::bad_query)?;
    let (admin_only, partner) = match &actor {
        None => (false, None),
        Some(ActorFilter::Admin) => (true, None),
        Some(ActorFilter::Partner(id)) => (false, Some(id.to_string())),
    };
    let rows = db
        .query(
            "SELECT id, at, actor_partner_id, actor_key_prefix, action, subject, details
             FROM audit_log
             WHERE ($1::text IS NULL OR action = $1)
               AND (NOT $2 OR actor_partner_id IS NULL)
               AND ($3::text IS NULL OR actor_partner_id = $3)
               AND ($4::timestamptz IS NULL OR at >= $4)
               AND ($5::timestamptz IS NULL OR at < $5)
               AND ($6::bigint IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
            &[
                &q.action.map(Action::as_str),
                &admin_only,
                &partner,
                &q.from,
                &q.to,
                &q.before,
                &(limit as i64 + 1),
            ],
        )
        .await?;
    let (rows, more) = crate::read::capped(rows, limit as usize);
    let entries = rows
        .iter()
        .map(|r| {
            let partner: Option<String> = column(r, "actor_partner_id")?;
            let actor = match partner {
                None => Actor::Admin,
                Some(partner_id) => Actor::Partner {
                    partner_id,
                    key_prefix: column::<Option<String>>(r, "actor_key_prefix")?
                        .unwrap_or_default(),
                },
            };
            Ok(Entry {
                id: column(r, "id")?,
                at: column(r, "at")?,
                actor,
                action: parsed(r, "action")?,
                subject: column(r, "subject")?,
                details: column(r, "details")?,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let next_before = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Page {
        entries,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_texts_are_what_serde_writes() {
        for a in Action::ALL {
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, a.as_str());
            assert_eq!(a.as_str().parse::<Action>().unwrap(), *a);
        }
    }

    #[test]
    fn actors_parse_as_admin_or_a_partner_id() {
        assert_eq!("admin".parse::<ActorFilter>(), Ok(ActorFilter::Admin));
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            id.to_string().parse::<ActorFilter>(),
            Ok(ActorFilter::Partner(id))
        );
        assert!("someone".parse::<ActorFilter>().is_err());
    }
}
