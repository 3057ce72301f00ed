//! Request bodies: JSON of at most `MAX_BODY` bytes, whose errors name the field.

use warp::Filter;
use warp::http::StatusCode;

use crate::problem::Problem;

pub const MAX_BODY: u64 = 4 * 1024 * 1024;

/// A JSON body. NUL characters are refused here, once for every route, because PostgreSQL
/// cannot store them in text or jsonb.
pub fn json<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .and_then(|body: bytes::Bytes| async move { parse(&body).map_err(warp::reject::custom) })
}

/// A body that may be left out (then `T::default()`); one that is sent must be valid. A body
/// that does not parse is a `400`, never silently the defaults: a rotation whose
/// `graceSeconds` was sent as a string must not revoke the live key at once.
pub fn optional_json<T: serde::de::DeserializeOwned + Default + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::bytes())
        .and_then(|body: bytes::Bytes| async move {
            if body.iter().all(u8::is_ascii_whitespace) {
                Ok(T::default())
            } else {
                parse(&body).map_err(warp::reject::custom)
            }
        })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let invalid = |detail: String| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "The request body is invalid",
        )
        .detail(detail)
    };
    if body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(invalid("NUL characters (\\u0000) are not allowed".into()));
    }
    // The error names the field (`graceSeconds: invalid type: string "3600", expected u32`).
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            invalid(e.inner().to_string())
        } else {
            invalid(format!("{path}: {}", e.inner()))
        }
    })?;
    de.end().map_err(|e| invalid(e.to_string()))?;
    Ok(value)
}
