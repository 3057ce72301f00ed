//! `/openapi.json`, generated from the handlers' annotations and the response types, and the
//! route templates that label request metrics (so the document and the metrics name the same
//! routes, and an id in a path never becomes a metric label).

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{admin, checkins, dashboard, events, partners, premium};

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Object)))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness of Kafka, the registry and PostgreSQL.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Object), (status = 503, body = Object)))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics, per route and status among them.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, body = Object)))]
#[allow(dead_code)]
fn openapi_json() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "muster API",
        description = "Attendance of many events at once, read from muster's projections. \
                       Errors are application/problem+json; every response carries x-request-id."
    ),
    paths(
        healthz, readyz, metrics, openapi_json,
        events::list,
        admin::register, admin::list, admin::get, admin::remove,
        partners::create, partners::list, partners::rotate, partners::revoke,
        checkins::accept,
        partners::events, partners::attendance, dashboard::analytics_summary,
        dashboard::dashboard, dashboard::event_insights,
        premium::series, premium::gates, premium::alerts,
    ),
    modifiers(&Security),
    tags(
        (name = "public", description = "No key needed"),
        (name = "partner", description = "x-api-key of any tier; only granted events"),
        (name = "premium", description = "x-api-key of the premium tier"),
        (name = "dashboard", description = "A partner key, or the admin bearer token for every event"),
        (name = "admin", description = "The admin bearer token (MUSTER_ADMIN_TOKEN)"),
        (name = "ingest", description = "Check-ins pushed by registered services, signed"),
        (name = "ops", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
}

/// Maps a request path to the route template it matched, for metric labels.
#[derive(Debug, Clone)]
pub struct RouteTemplates(Vec<(String, Vec<Option<String>>)>);

impl RouteTemplates {
    pub fn from_document() -> Self {
        let doc = ApiDoc::openapi();
        let mut templates: Vec<(String, Vec<Option<String>>)> = doc
            .paths
            .paths
            .keys()
            .map(|t| {
                let segments = t
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                (t.clone(), segments)
            })
            .collect();
        // Literal segments win over parameters: `/a/list` before `/a/{id}`.
        templates.sort_by_key(|(_, s)| s.iter().filter(|x| x.is_none()).count());
        Self(templates)
    }

    /// The template, or `unmatched` (404s and probes must not mint labels).
    pub fn label(&self, path: &str) -> &str {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.0
            .iter()
            .find(|(_, segs)| {
                segs.len() == parts.len()
                    && segs
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
            })
            .map_or("unmatched", |(t, _)| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_tier_and_its_security() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        for path in [
            "/api/public/events",
            "/api/partner/events/{eventId}/attendance",
            "/api/partner/analytics/summary",
            "/api/premium/events/{eventId}/series",
            "/api/dashboard",
            "/api/events/{eventId}/insights",
            "/api/admin/partners",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["api_key"]["name"], "x-api-key");
        assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    }

    #[test]
    fn paths_map_to_templates_not_ids() {
        let t = RouteTemplates::from_document();
        assert_eq!(
            t.label("/api/partner/events/ev-123/attendance"),
            "/api/partner/events/{eventId}/attendance"
        );
        assert_eq!(t.label("/api/partner/events"), "/api/partner/events");
        assert_eq!(
            t.label("/api/partner/analytics/summary"),
            "/api/partner/analytics/summary"
        );
        assert_eq!(t.label("/wp-admin/x.php"), "unmatched");
    }
}
