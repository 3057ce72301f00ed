//! `POST /api/premium/sql`: one read-only query over the projections, restricted in PostgreSQL
//! to the partner's events (other events' ids in the insight tables redacted), within
//! `[api.sql]`'s limits: time, rows, answer bytes, memory, and queries at once per key.

use muster_analytics::{Answer, Limits, QueryError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{Partner, Viewer};
use crate::config::SqlConfig;
use crate::problem::Problem;
use crate::problem::answers::{
    AnswerTooLarge, BadRequest, NotPremiumOrWrites, PastQueryLimits, QueryRateLimited,
};
use crate::route::{Ctx, Route, any, route, with};

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

/// A Parquet file's bytes, as the OpenAPI document describes them.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ParquetFile(Vec<u8>);

/// A query's answer as the routes and pages get it, with the limits it ran within.
pub struct Ran {
    pub answer: Answer,
    pub limits: Limits,
}

impl Sql {
    /// The tables `viewer` may query, each with its columns (name and type): the projections,
    /// a partner's restricted to its events, as [`Sql::run`] sees them.
    pub async fn tables(
        pool: &deadpool_postgres::Pool,
        viewer: &Viewer,
    ) -> Result<Vec<Table>, Problem> {
        let ctx = muster_analytics::projections(pool, scope(viewer))
            .await
            .map_err(QueryError::Setup)?;
        let tables = muster_analytics::tables(&ctx)
            .await
            .map_err(QueryError::Setup)?;
        Ok(tables
            .into_iter()
            .map(|(name, schema)| Table {
                name,
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().to_string()))
                    .collect(),
            })
            .collect())
    }

    /// Runs one read-only `query` as `viewer` within `[api.sql]`'s limits (at most `max_rows`
    /// rows when given) and a slot of the viewer's key: what `POST /api/premium/sql`, its
    /// downloads and the SQL page all call.
    pub async fn run(
        &self,
        pool: &deadpool_postgres::Pool,
        viewer: &Viewer,
        query: &str,
        max_rows: Option<usize>,
    ) -> Result<Ran, Problem> {
        // Checked before anything is opened, so a write costs no database round trip.
        muster_analytics::check_read_only(query)?;
        // The admin's slots are those its Flight SQL sessions count under too.
        let key = match viewer {
            Viewer::Admin => "admin".to_owned(),
            Viewer::Partner(p) => p.id.to_string(),
        };
        let _slot = self.slots.try_acquire(&key)?;
        let ctx = muster_analytics::projections(pool, scope(viewer))
            .await
            .map_err(QueryError::Setup)?;
        let limits = self.cfg.limits(max_rows);
        let answer = muster_analytics::query(&ctx, query, &limits).await?;
        Ok(Ran { answer, limits })
    }
}

/// The events a viewer's queries are restricted to (`None`: every event, the admin).
fn scope(viewer: &Viewer) -> Option<Vec<String>> {
    viewer.event_ids().map(<[String]>::to_vec)
}

/// A table a query may name, and its columns' names and types.
pub struct Table {
    pub name: String,
    pub columns: Vec<(String, String)>,
}

/// The column names of an answer.
pub fn columns(answer: &Answer) -> Vec<String> {
    answer
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// A download's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    Csv,
    Parquet,
}

muster_schemas::text_values!(Download {
    Csv => "csv",
    Parquet => "parquet",
});

impl Download {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// An answer as this file, to be saved (`content-disposition: attachment`) as
    /// `muster-query.{csv,parquet}`.
    pub fn file(self, ran: &Ran) -> Result<Response, Problem> {
        let format = match self {
            Self::Csv => muster_analytics::Format::Csv,
            Self::Parquet => muster_analytics::Format::Parquet,
        };
        let mut buf = Vec::new();
        muster_analytics::write(&ran.answer, format, &mut buf).map_err(Problem::from)?;
        let mut res = Response::new(buf.into());
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        let disposition = format!("attachment; filename=\"muster-query.{}\"", self.as_str());
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            "x-muster-truncated",
            HeaderValue::from_static(if ran.answer.truncated {
                "true"
            } else {
                "false"
            }),
        );
        Ok(res)
    }
}

#[utoipa::path(post, path = "/api/premium/sql", tag = "premium",
    request_body = SqlRequest,
    responses(
        (status = 200, body = SqlAnswer),
        BadRequest, NotPremiumOrWrites, AnswerTooLarge, PastQueryLimits, QueryRateLimited,
    ))]
async fn run(
    partner: Partner,
    pool: deadpool_postgres::Pool,
    sql: Sql,
    body: SqlRequest,
) -> Result<impl Reply, Problem> {
    let ran = sql
        .run(
            &pool,
            &Viewer::Partner(partner),
            &body.query,
            max_rows(&body),
        )
        .await?;
    let rows = muster_analytics::json_rows_within(&ran.answer.batches, ran.limits.max_bytes)?;
    Ok(warp::reply::json(&SqlAnswer {
        columns: columns(&ran.answer),
        rows,
        truncated: ran.answer.truncated,
    }))
}

fn max_rows(body: &SqlRequest) -> Option<usize> {
    body.max_rows.map(|n| n as usize)
}

/// The same query as `POST /api/premium/sql`, answered as a CSV file (a header row, then
/// the rows); `x-muster-truncated: true` when more rows matched than were written.
#[utoipa::path(post, path = "/api/premium/sql/csv", tag = "premium",
    request_body = SqlRequest,
    responses(
        (status = 200, body = String, content_type = "text/csv",
            description = "The answer as CSV, as an attachment",
            headers(("x-muster-truncated" = bool, description = "More rows matched than were written"))),
        BadRequest, NotPremiumOrWrites, AnswerTooLarge, PastQueryLimits, QueryRateLimited,
    ))]
async fn csv(
    partner: Partner,
    pool: deadpool_postgres::Pool,
    sql: Sql,
    body: SqlRequest,
) -> Result<Response, Problem> {
    download(Download::Csv, partner, &pool, &sql, &body).await
}

/// The same query as `POST /api/premium/sql`, answered as a Parquet file.
#[utoipa::path(post, path = "/api/premium/sql/parquet", tag = "premium",
    request_body = SqlRequest,
    responses(
        (status = 200, body = ParquetFile, content_type = "application/vnd.apache.parquet",
            description = "The answer as Parquet, as an attachment",
            headers(("x-muster-truncated" = bool, description = "More rows matched than were written"))),
        BadRequest, NotPremiumOrWrites, AnswerTooLarge, PastQueryLimits, QueryRateLimited,
    ))]
async fn parquet(
    partner: Partner,
    pool: deadpool_postgres::Pool,
    sql: Sql,
    body: SqlRequest,
) -> Result<Response, Problem> {
    download(Download::Parquet, partner, &pool, &sql, &body).await
}

async fn download(
    format: Download,
    partner: Partner,
    pool: &deadpool_postgres::Pool,
    sql: &Sql,
    body: &SqlRequest,
) -> Result<Response, Problem> {
    let ran = sql
        .run(pool, &Viewer::Partner(partner), &body.query, max_rows(body))
        .await?;
    format.file(&ran)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(run, csv, parquet))]
pub struct Doc;

impl Sql {
    pub fn of(ctx: &Ctx) -> Self {
        Self {
            cfg: ctx.cfg.sql.clone(),
            slots: ctx.guards.queries.clone(),
        }
    }
}

pub fn routes(ctx: &Ctx) -> Route {
    let sql = Sql::of(ctx);
    let input = || {
        ctx.auth
            .premium()
            .and(with(ctx.state.pool.clone()))
            .and(with(sql.clone()))
            .and(crate::body::json())
    };
    any([
        route!(run, input()),
        route!(csv, input()),
        route!(parquet, input()),
    ])
}
