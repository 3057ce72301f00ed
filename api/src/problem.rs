//! Every error answer is `application/problem+json` (RFC 9457) with a stable `type`. `Problem`
//! is the API's one error type: handlers return it (`?` converts database and pool errors),
//! filters reject with it, and its `Reply` impl is the one place an error becomes HTTP.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Reject;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extra response headers (`Retry-After` and `RateLimit-*` on a 429).
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Self {
            kind: format!("https://muster.dev/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A bug on our side (a query reading a column that is not there): logged, not shown.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed on a bug");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }

    /// 404 with a detail naming what is missing.
    pub fn not_found(title: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", title).detail(detail)
    }

    /// 400 for a query string that parses but means nothing.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "The query string is invalid",
        )
        .detail(detail)
    }

    /// 422 for a body that parses but is refused (`kind` names what: `invalid-partner`).
    pub fn unprocessable(kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title).detail(detail)
    }

    /// A database failure: the detail is logged, not shown.
    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed on a dependency");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "A backing service is unavailable",
        )
    }
}

impl Reject for Problem {}

/// The problem answers routes share, for their `responses(…)`: each is one status with a
/// problem body, so a route lists them by name instead of repeating the tuple.
pub mod answers {
    use super::Problem;

    macro_rules! answer {
        ($($(#[$doc:meta])* $name:ident => $status:literal $(, $description:literal)?;)+) => {$(
            $(#[$doc])*
            #[derive(utoipa::IntoResponses)]
            #[response(status = $status, content_type = "application/problem+json"
                $(, description = $description)?)]
            #[allow(dead_code)]
            pub struct $name(Problem);
        )+};
    }

    answer!(
        BadRequest => 400;
        Unauthorized => 401;
        Forbidden => 403;
        /// Premium routes' 403: a partner-tier key, or an event not granted to the key.
        NotPremiumOrGranted => 403, "Not premium, or the event was not granted";
        /// Premium routes over every event's aggregates: 403 for a partner-tier key.
        NotPremium => 403, "Not premium";
        NotFound => 404;
        Unprocessable => 422;
        RateLimited => 429;
        Unavailable => 503;
        /// The analyst SQL routes' refusals.
        NotPremiumOrWrites => 403, "Not premium, or the query would write";
        AnswerTooLarge => 413, "The answer is larger than the API's limit";
        PastQueryLimits => 422, "Past the time or memory limit";
        QueryRateLimited => 429, "Past the key's rate limit or its queries at once";
    );
}

impl From<tokio_postgres::Error> for Problem {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::unavailable(&e)
    }
}

impl From<deadpool_postgres::PoolError> for Problem {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::unavailable(&e)
    }
}

/// The stores of other crates (registrar, insights) fail with `anyhow`: a dependency failed.
impl From<anyhow::Error> for Problem {
    fn from(e: anyhow::Error) -> Self {
        Self::unavailable(&format!("{e:#}"))
    }
}

impl warp::Reply for Problem {
    fn into_response(self) -> warp::reply::Response {
        let mut res =
            warp::reply::with_status(warp::reply::json(&self), self.status()).into_response();
        res.headers_mut().insert(
            "content-type",
            warp::http::HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in &self.headers {
            if let Ok(v) = warp::http::HeaderValue::from_str(value) {
                res.headers_mut().insert(*name, v);
            }
        }
        res
    }
}

/// Turns every rejection into a problem answer.
pub async fn recover(rejection: warp::Rejection) -> Result<Problem, std::convert::Infallible> {
    if let Some(p) = rejection.find::<Problem>() {
        return Ok(p.clone());
    }
    // Specific causes first: warp combines the rejections of every route tried, and a body
    // error on the matching route must not read as "method not allowed" from another one.
    let p = if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "The request body is invalid",
        )
        .detail(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        Problem::bad_query(e.to_string())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "The request body is too large",
        )
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The request body must be application/json",
        )
    } else if rejection.is_not_found() {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "No such resource")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed on this resource",
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    };
    Ok(p)
}
