//! Who may use the Arrow Flight SQL endpoint (`[api.flight]`, served by `muster api`): the
//! admin token queries every projection and the archive; a premium API key queries the
//! projections restricted in PostgreSQL to its events (other events' ids in the insight
//! tables redacted), within its tier's rate limit and the premium SQL's limits; a partner-tier
//! key is refused, and so is a missing or unknown token. Each key runs at most
//! `[api.sql] max_concurrent_queries` queries at once, here and over HTTP together.

use muster_analytics::Limits;
use muster_analytics::flight::{Authorize, Refused, Session};

use crate::auth::{Partner, Tier};
use crate::config::FlightConfig;

pub enum Caller {
    Admin,
    Partner(Partner),
}

pub struct Authorizer {
    pub pool: deadpool_postgres::Pool,
    pub keys: crate::auth::Keys,
    pub admin_token: Option<String>,
    pub cfg: FlightConfig,
    /// The partner routes' rate limits: a Flight SQL call counts as a request.
    pub rate: crate::auth::Limits,
    /// Queries running per key, shared with `POST /api/premium/sql`.
    pub slots: muster_analytics::Slots,
}

impl Authorizer {
    pub fn new(
        pool: deadpool_postgres::Pool,
        keys: crate::auth::Keys,
        admin_token: Option<String>,
        mut cfg: FlightConfig,
        guards: &crate::server::Guards,
    ) -> Self {
        // `muster sql` reads only a local archive; elsewhere the admin sees the projections.
        if let Some(url) = &cfg.archive_url
            && !(url.starts_with('/') || url.starts_with("file:"))
        {
            tracing::warn!(%url, "flight sql: the archive is not local, so it is not queryable");
            cfg.archive_url = None;
        }
        Self {
            pool,
            keys,
            admin_token,
            cfg,
            rate: guards.rate.clone(),
            slots: guards.queries.clone(),
        }
    }

    /// The partner holding `key`, if it is a live key of a live partner.
    async fn partner(&self, key: &str) -> Result<Option<Partner>, Refused> {
        self.keys
            .lookup(key)
            .await
            .map_err(|p| Refused::Unavailable(p.title))
    }
}

impl Authorize for Authorizer {
    type Scope = Caller;

    async fn authorize(&self, token: Option<&str>) -> Result<Caller, Refused> {
        let Some(token) = token else {
            return Err(Refused::Unauthenticated(
                "send `authorization: Bearer <admin token or premium API key>`".into(),
            ));
        };
        let bearer = format!("Bearer {token}");
        if crate::auth::check_admin(self.admin_token.as_deref(), Some(&bearer)).is_ok() {
            return Ok(Caller::Admin);
        }
        match self.partner(token).await? {
            None => Err(Refused::Unauthenticated(
                "the token is neither the admin token nor a live API key".into(),
            )),
            Some(p) if p.tier != Tier::Premium => Err(Refused::PermissionDenied(
                "SQL needs a premium API key: the partner tier does not include it".into(),
            )),
            Some(p) => {
                self.rate.check(&p).map_err(|problem| {
                    Refused::Exhausted(format!(
                        "{}: {}",
                        problem.title,
                        problem.detail.unwrap_or_default()
                    ))
                })?;
                Ok(Caller::Partner(p))
            }
        }
    }

    async fn session(&self, caller: &Caller) -> Result<Session, Refused> {
        let key = match caller {
            Caller::Admin => "admin".to_owned(),
            Caller::Partner(p) => p.id.to_string(),
        };
        let slot = self
            .slots
            .try_acquire(&key)
            .map_err(|e| Refused::Exhausted(e.to_string()))?;
        let setup = |e: anyhow::Error| Refused::Unavailable(format!("{e:#}"));
        Ok(match caller {
            Caller::Admin => Session {
                ctx: muster_analytics::context(&self.pool, self.cfg.archive_url.as_deref())
                    .await
                    .map_err(setup)?,
                limits: Limits {
                    timeout: self.cfg.timeout,
                    max_rows: self.cfg.max_rows,
                    max_bytes: self.cfg.max_answer_bytes,
                    memory: self.cfg.memory_limit,
                },
                slot: Some(slot),
            },
            Caller::Partner(p) => Session {
                ctx: muster_analytics::projections(&self.pool, Some(p.event_ids.clone()))
                    .await
                    .map_err(setup)?,
                limits: Limits {
                    timeout: self.cfg.partner_timeout,
                    max_rows: self.cfg.partner_max_rows,
                    max_bytes: self.cfg.partner_max_answer_bytes,
                    memory: self.cfg.partner_memory_limit,
                },
                slot: Some(slot),
            },
        })
    }
}
