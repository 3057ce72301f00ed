//! `/api/admin/audit` and `/api/admin/dead-letters`: what the admin's console reads, open to the
//! admin's own tools too. Each reads through the one query the page uses.

use warp::{Filter, Reply};

use crate::audit;
use crate::problem::Problem;
use crate::problem::answers::BadRequest;
use crate::read::{Client, dead_letters};
use crate::route::{Ctx, Route, any, route};

/// `GET /api/admin/audit`: every admin and partner-management action, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin",
    params(audit::Query),
    responses((status = 200, body = audit::Page), BadRequest))]
async fn audit_log(q: audit::Query, db: Client) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(&audit::list(&db, &q).await?))
}

/// `GET /api/admin/dead-letters`: the recent records of the dead-letter topic, newest first,
/// from its projection.
#[utoipa::path(get, path = "/api/admin/dead-letters", tag = "admin",
    params(dead_letters::Query),
    responses((status = 200, body = dead_letters::Page), BadRequest))]
async fn dead_letter_log(q: dead_letters::Query, db: Client) -> Result<impl Reply, Problem> {
    Ok(warp::reply::json(&dead_letters::list(&db, &q).await?))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(audit_log, dead_letter_log),
    components(schemas(audit::Action, audit::Actor))
)]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    any([
        route!(
            audit_log,
            warp::query::<audit::Query>(),
            ctx.auth.admin(),
            ctx.db()
        ),
        route!(
            dead_letter_log,
            warp::query::<dead_letters::Query>(),
            ctx.auth.admin(),
            ctx.db()
        ),
    ])
}
