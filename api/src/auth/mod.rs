//! Who is calling. A route states what it needs with one of [`Auth`]'s filters, and gets the
//! caller as a typed value: `admin()` (the admin bearer token), `partner()` and `premium()`
//! (a live API key of that tier, within its rate limit), or `viewer()` (either: the admin sees
//! every event, a partner its granted ones). Web sessions keep a [`Credential`] and get their
//! viewer from it here, so pages and the JSON API share one authorization path.

mod credential;
mod keys;
mod rate;
mod token;

use warp::Filter;
use warp::http::StatusCode;

pub use credential::{Credential, Use};
pub use keys::{KEYS_CHANNEL, Key, Keys, live_keys};
pub use rate::{Limits, RateLimits, RateUse};
pub use token::check_admin;

use crate::domain::text_enum;
use crate::problem::Problem;
use crate::route::reject;

text_enum!(
    /// A partner's tier: premium adds the premium routes and SQL.
    pub enum Tier {
        Partner => "partner",
        Premium => "premium",
    }
);

/// The caller of a partner route, once its key checked out.
#[derive(Debug, Clone)]
pub struct Partner {
    pub id: uuid::Uuid,
    pub name: String,
    pub tier: Tier,
    pub event_ids: Vec<String>,
    /// The first characters of the key this request came with (`mk_…`).
    pub key_prefix: String,
    /// The key's rate limit and what this request left of it; `None` when the request was
    /// not counted (a live update pushed to a page).
    pub rate: Option<RateUse>,
}

impl Partner {
    pub fn may_see(&self, event_id: &str) -> bool {
        self.event_ids.iter().any(|e| e == event_id)
    }

    /// 403 unless the event was granted to this partner.
    pub fn check(&self, event_id: &str) -> Result<(), Problem> {
        if self.may_see(event_id) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "event-not-granted",
                "This API key may not see this event",
            )
            .detail(format!("event {event_id} was not granted to this partner")))
        }
    }
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

    /// 403 unless the viewer may see the event.
    pub fn check(&self, event_id: &str) -> Result<(), Problem> {
        match self {
            Self::Admin => Ok(()),
            Self::Partner(p) => p.check(event_id),
        }
    }
}

/// What the auth filters check against: the admin token, the keys, the rate limits.
#[derive(Clone)]
pub struct Auth {
    keys: Keys,
    limits: Limits,
    admin_token: Option<String>,
}

impl Auth {
    pub fn new(keys: Keys, limits: Limits, admin_token: Option<String>) -> Self {
        Self {
            keys,
            limits,
            admin_token,
        }
    }

    /// Where keys are checked (for routes that change them: see [`Keys::refresh`]).
    pub fn keys(&self) -> Keys {
        self.keys.clone()
    }

    /// Passes the admin (`Authorization: Bearer <admin token>`).
    pub fn admin(&self) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + use<> {
        let token = self.admin_token.clone();
        warp::header::optional::<String>("authorization")
            .and_then(move |header: Option<String>| {
                let checked = check_admin(token.as_deref(), header.as_deref()).map_err(reject);
                async move { checked }
            })
            .untuple_one()
    }

    /// Passes a partner of any tier whose `x-api-key` is valid and within its rate limit.
    pub fn partner(
        &self,
    ) -> impl Filter<Extract = (Partner,), Error = warp::Rejection> + Clone + use<> {
        let auth = self.clone();
        warp::header::optional::<String>("x-api-key").and_then(move |key: Option<String>| {
            let auth = auth.clone();
            async move { auth.authenticate(key).await.map_err(reject) }
        })
    }

    /// Passes a partner of the premium tier; a partner-tier key gets 403.
    pub fn premium(
        &self,
    ) -> impl Filter<Extract = (Partner,), Error = warp::Rejection> + Clone + use<> {
        self.partner().and_then(|p: Partner| async move {
            if p.tier == Tier::Premium {
                Ok(p)
            } else {
                Err(reject(
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

    /// The admin when an `Authorization` header is sent (and right), else a partner by
    /// `x-api-key`.
    pub fn viewer(
        &self,
    ) -> impl Filter<Extract = (Viewer,), Error = warp::Rejection> + Clone + use<> {
        let auth = self.clone();
        warp::header::optional::<String>("authorization")
            .and(warp::header::optional::<String>("x-api-key"))
            .and_then(move |header: Option<String>, key: Option<String>| {
                let auth = auth.clone();
                async move {
                    match header {
                        Some(h) => check_admin(auth.admin_token.as_deref(), Some(&h))
                            .map(|()| Viewer::Admin),
                        None => auth.authenticate(key).await.map(Viewer::Partner),
                    }
                    .map_err(reject)
                }
            })
    }

    async fn authenticate(&self, key: Option<String>) -> Result<Partner, Problem> {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "missing-api-key",
                "An API key is required",
            )
            .detail("send it in the x-api-key header"));
        };
        let Some(mut partner) = self.keys.lookup(&key).await? else {
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-api-key",
                "The API key is unknown or revoked",
            ));
        };
        partner.rate = Some(self.limits.check(&partner)?);
        Ok(partner)
    }
}
