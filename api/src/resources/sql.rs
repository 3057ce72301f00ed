//! `POST /api/premium/sql`: one read-only query over the projections, restricted in PostgreSQL
//! to the partner's events (other events' ids in the insight tables redacted), within
//! `[api.sql]`'s limits: time, rows, answer bytes, memory, and queries at once per key.

use muster_analytics::{Limits, QueryError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;

use warp::{Filter, Reply};

use crate::auth::Partner;
use crate::config::SqlConfig;
use crate::problem::Problem;
use crate::problem::answers::BadRequest;
use crate::route::{Ctx, Route, route, with};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlRequest {
    /// One SELECT, WITH, VALUES or SHOW statement (DataFusion SQL).
    pub query: String,
    /// At most this many rows (default and maximum: the API's limit, `[api.sql] max_rows`,
    /// 10,000 unless configured).
    #[schema(minimum = 1)]
    pub max_rows: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqlAnswer {
    pub columns: Vec<String>,
    /// One object per row, keyed by column.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    /// More rows matched than were returned.
    pub truncated: bool,
}

/// Defaults of `[api.sql]` (and of Flight SQL with a premium key).
pub const MAX_ROWS: usize = 10_000;
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the route needs beyond the pool: its limits, and the slots of queries running per key
/// (shared with Flight SQL).
#[derive(Clone)]
pub struct Sql {
    pub cfg: SqlConfig,
    pub slots: muster_analytics::Slots,
}

impl From<QueryError> for Problem {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotReadOnly(d) => Problem::new(
                StatusCode::FORBIDDEN,
                "read-only",
                "Only queries that read are allowed",
            )
            .detail(d),
            QueryError::Timeout(t) => Problem::unprocessable(
                "query-timeout",
                "The query ran past its time limit and was stopped",
                format!("the limit is {t:?}"),
            ),
            e @ QueryError::TooLarge { .. } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "answer-too-large",
                "The answer is larger than the API's limit",
            )
            .detail(e.to_string()),
            e @ QueryError::Memory { .. } => Problem::unprocessable(
                "memory-limit",
                "The query needs more memory than its limit and was stopped",
                e.to_string(),
            ),
            e @ QueryError::Busy(_) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-queries",
                "Too many queries at once for this API key",
            )
            .detail(e.to_string())
            .header("retry-after", "1".to_owned()),
            QueryError::Sql(e) => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-sql",
                "The query is invalid",
            )
            .detail(e.to_string()),
            QueryError::Setup(e) => e.into(),
        }
    }
}

#[utoipa::path(post, path = "/api/premium/sql", tag = "premium",
    request_body = SqlRequest,
    responses(
        (status = 200, body = SqlAnswer),
        BadRequest,
        (status = 403, body = Problem, content_type = "application/problem+json",
            description = "Not premium, or the query would write"),
        (status = 413, body = Problem, content_type = "application/problem+json",
            description = "The answer is larger than the API's limit"),
        (status = 422, body = Problem, content_type = "application/problem+json",
            description = "Past the time or memory limit"),
        (status = 429, body = Problem, content_type = "application/problem+json",
            description = "Past the key's rate limit or its queries at once"),
    ))]
async fn run(
    partner: Partner,
    pool: deadpool_postgres::Pool,
    sql: Sql,
    body: SqlRequest,
) -> Result<impl Reply, Problem> {
    // Checked before anything is opened, so a write costs no database round trip.
    muster_analytics::check_read_only(&body.query)?;
    let _slot = sql.slots.try_acquire(&partner.id.to_string())?;
    let ctx = muster_analytics::projections(&pool, Some(partner.event_ids.clone()))
        .await
        .map_err(QueryError::Setup)?;
    let limits: Limits = sql.cfg.limits(body.max_rows.map(|n| n as usize));
    let answer = muster_analytics::query(&ctx, &body.query, &limits).await?;
    let columns = answer.batches.first().map_or_else(Vec::new, |b| {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    });
    let rows = muster_analytics::json_rows_within(&answer.batches, limits.max_bytes)?;
    Ok(warp::reply::json(&SqlAnswer {
        columns,
        rows,
        truncated: answer.truncated,
    }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(run))]
pub struct Doc;

pub fn routes(ctx: &Ctx) -> Route {
    let sql = Sql {
        cfg: ctx.cfg.sql.clone(),
        slots: ctx.guards.queries.clone(),
    };
    route!(
        run,
        ctx.auth.premium(),
        with(ctx.state.pool.clone()),
        with(sql),
        crate::body::json()
    )
}
