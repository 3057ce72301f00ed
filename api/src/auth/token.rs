//! The admin bearer token, compared in constant time.

use subtle::ConstantTimeEq;
use warp::http::StatusCode;

use crate::problem::Problem;

/// The admin check on a raw `Authorization` header value. The admin API is closed while no
/// token is configured.
pub fn check_admin(expected: Option<&str>, header: Option<&str>) -> Result<(), Problem> {
    // A blank token is no token: never let an empty header match an empty setting.
    let Some(expected) = expected.filter(|t| !t.trim().is_empty()) else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "The admin API is disabled",
        )
        .detail("set MUSTER_ADMIN_TOKEN to enable it"));
    };
    let given = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid admin bearer token is required",
        ))
    }
}
