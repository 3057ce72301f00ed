//! `/openapi.json`, generated from the handlers' annotations and the response types, and the
//! route templates that label request metrics (so the document and the metrics name the same
//! routes, and an id in a path never becomes a metric label).

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{admin, analytics, checkins, dashboard, events, partners, premium, sql, webhooks};

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
        premium::series, premium::gates, premium::alerts, sql::run,
        analytics::forecast, analytics::behaviour, analytics::patterns, analytics::roi,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::rotate,
        webhooks::enable, webhooks::deliveries, webhooks::replay,
    ),
    components(schemas(
        crate::range::Stored,
        crate::dashboard::Status,
        crate::webhooks::DeliveryState
    )),
    modifiers(&Security),
    tags(
        (name = "public", description = "No key needed"),
        (name = "partner", description = "x-api-key of any tier; only granted events"),
        (name = "premium", description = "x-api-key of the premium tier"),
        (name = "dashboard", description = "A partner key, or the admin bearer token for every event"),
        (name = "admin", description = "The admin bearer token (MUSTER_ADMIN_TOKEN)"),
        (name = "webhooks", description = "x-api-key: the partner's webhook subscriptions"),
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

/// A documented route: its template, its segments (`None` for a parameter) and its methods.
#[derive(Debug, Clone)]
struct Route {
    template: String,
    segments: Vec<Option<String>>,
    allow: String,
}

/// Maps a request path to the route template it matched, for metric labels and for the `Allow`
/// header of a 405.
#[derive(Debug, Clone)]
pub struct RouteTemplates(Vec<Route>);

impl RouteTemplates {
    pub fn from_document() -> Self {
        let doc: serde_json::Value =
            serde_json::from_str(&document()).expect("the document is JSON");
        let mut routes: Vec<Route> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(t, item)| {
                let segments = t
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| item.get(*m).is_some())
                    .map(str::to_uppercase)
                    .collect();
                Route {
                    template: t.clone(),
                    segments,
                    allow: methods.join(", "),
                }
            })
            .collect();
        // Literal segments win over parameters: `/a/list` before `/a/{id}`.
        routes.sort_by_key(|r| r.segments.iter().filter(|x| x.is_none()).count());
        Self(routes)
    }

    fn find(&self, path: &str) -> Option<&Route> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.0.iter().find(|r| {
            r.segments.len() == parts.len()
                && r.segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
        })
    }

    /// The template, or `unmatched` (404s and probes must not mint labels).
    pub fn label(&self, path: &str) -> &str {
        self.find(path).map_or("unmatched", |r| r.template.as_str())
    }

    /// The methods a path answers, for the `Allow` header of a 405.
    pub fn allow(&self, path: &str) -> Option<&str> {
        self.find(path).map(|r| r.allow.as_str())
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
        assert_eq!(t.allow("/api/admin/partners"), Some("GET, POST"));
    }
}
