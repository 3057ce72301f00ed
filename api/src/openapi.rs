//! `/openapi.json`, merged from each resource's description (the same annotations the routes
//! are served from), and the route templates that label request metrics (so the document and
//! the metrics name the same routes, and an id in a path never becomes a metric label).

use std::collections::BTreeMap;

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoResponses, Modify, OpenApi};

use std::sync::Arc;

use warp::Filter;

use crate::problem::Problem;
use crate::problem::answers::{Forbidden, NotPremium, RateLimited, Unauthorized};
use crate::route::{Route, Template, route, with};

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Object)))]
#[allow(dead_code)]
fn healthz() {}

/// Readiness of Kafka, the registry, PostgreSQL and the in-memory view: `degraded` (still 200)
/// names a part that serves the slower way, such as the view answering from PostgreSQL.
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
async fn openapi_json(document: Arc<str>) -> Result<impl warp::Reply, Problem> {
    Ok(warp::reply::with_header(
        document.to_string(),
        "content-type",
        "application/json",
    ))
}

/// `/openapi.json`, rendered once.
pub fn routes() -> Route {
    route!(openapi_json, with(Arc::<str>::from(document())))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "muster API",
        description = "Attendance of many events at once, read from muster's projections. \
                       Errors are application/problem+json; every response carries x-request-id."
    ),
    paths(healthz, readyz, metrics, openapi_json),
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

/// Who may call the routes of `tag`: the security schemes its auth filter accepts (any one of
/// them) and the problems that filter answers with. Written here once rather than on every
/// route; a route's own answer for the same status wins (the SQL route's 403 and 429 say more,
/// and a premium route that also checks the grant says so).
fn audience(tag: &str) -> Option<(&'static [&'static str], Vec<Answers>)> {
    Some(match tag {
        "partner" | "webhooks" => (
            &["api_key"],
            vec![Unauthorized::responses(), RateLimited::responses()],
        ),
        "premium" => (
            &["api_key"],
            vec![
                Unauthorized::responses(),
                NotPremium::responses(),
                RateLimited::responses(),
            ],
        ),
        "dashboard" => (
            &["api_key", "admin_token"],
            vec![Unauthorized::responses(), RateLimited::responses()],
        ),
        "admin" => (
            &["admin_token"],
            vec![Unauthorized::responses(), Forbidden::responses()],
        ),
        _ => return None,
    })
}

type Answers = BTreeMap<String, RefOr<Response>>;

/// Gives every operation the security and answers of its tag's audience.
fn add_audiences(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            let mut tags = op.tags.iter().flatten();
            let Some((schemes, answers)) = tags.find_map(|t| audience(t)) else {
                continue;
            };
            let security = schemes
                .iter()
                .map(|s| SecurityRequirement::new(*s, Vec::<String>::new()));
            op.security = Some(security.collect());
            for (status, answer) in answers.into_iter().flatten() {
                op.responses.responses.entry(status).or_insert(answer);
            }
        }
    }
}

/// The document as served.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    for part in crate::resources::docs() {
        doc.merge(part);
    }
    add_audiences(&mut doc);
    doc.to_json().expect("the OpenAPI document serializes")
}

/// A documented route: its template, its path segments and the methods it answers.
#[derive(Debug, Clone)]
struct Documented {
    template: String,
    segments: Template,
    allow: String,
}

/// Maps a request path to the route template it matched, for metric labels and for the `Allow`
/// header of a 405.
#[derive(Debug, Clone)]
pub struct RouteTemplates(Vec<Documented>);

impl RouteTemplates {
    pub fn from_document() -> Self {
        let doc: serde_json::Value =
            serde_json::from_str(&document()).expect("the document is JSON");
        let mut routes: Vec<Documented> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(t, item)| {
                let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                    .into_iter()
                    .filter(|m| item.get(*m).is_some())
                    .map(str::to_uppercase)
                    .collect();
                Documented {
                    template: t.clone(),
                    segments: Template::new(t),
                    allow: methods.join(", "),
                }
            })
            .collect();
        // The pages are no JSON operations, so not in the document; their paths label too.
        routes.extend(
            crate::web::paths::templates()
                .into_iter()
                .map(|(t, allow)| Documented {
                    segments: Template::new(&t),
                    template: t,
                    allow: allow.to_owned(),
                }),
        );
        // Literal segments win over parameters: `/a/list` before `/a/{id}`.
        routes.sort_by_key(|r| r.segments.parameters());
        Self(routes)
    }

    fn find(&self, path: &str) -> Option<&Documented> {
        self.0.iter().find(|r| r.segments.matches(path).is_some())
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
    fn each_route_has_its_audiences_security_and_answers() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let op = |path: &str, method: &str| doc["paths"][path][method].clone();
        let partner = op("/api/partner/events", "get");
        assert_eq!(partner["security"], serde_json::json!([{"api_key": []}]));
        assert!(partner["responses"]["401"].is_object());
        assert!(partner["responses"]["429"].is_object());
        let dashboard = op("/api/dashboard", "get");
        assert_eq!(
            dashboard["security"],
            serde_json::json!([{"api_key": []}, {"admin_token": []}])
        );
        let admin = op("/api/admin/partners", "get");
        assert_eq!(admin["security"], serde_json::json!([{"admin_token": []}]));
        assert!(admin["responses"]["403"].is_object());
        // A route's own answer for a status wins over its audience's.
        let sql = op("/api/premium/sql", "post");
        assert_eq!(
            sql["responses"]["403"]["description"],
            "Not premium, or the query would write"
        );
        assert_eq!(
            op("/api/premium/analytics/roi", "get")["responses"]["403"]["description"],
            "Not premium"
        );
        assert!(op("/api/public/events", "get")["security"].is_null());
    }

    #[test]
    fn domain_values_are_listed() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let values = |v: &serde_json::Value| -> Vec<String> {
            v["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("no enum in {v}"))
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect()
        };
        let alert = &schemas["Alert"]["properties"];
        assert!(values(&alert["severity"]).contains(&"critical".to_owned()));
        assert!(values(&alert["kind"]).contains(&"gate-down".to_owned()));
        assert_eq!(values(&schemas["AlertState"]), ["active", "resolved"]);
        assert_eq!(
            values(&schemas["Direction"]),
            ["rising", "falling", "steady"]
        );
        assert!(values(&schemas["Status"]).contains(&"pending".to_owned()));
        assert!(values(&schemas["RecommendationKind"]).contains(&"stale-data".to_owned()));
        assert_eq!(values(&schemas["Resolution"]), ["minute", "hour", "day"]);
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
        assert_eq!(t.label("/events/ev-1"), "/events/{eventId}");
        assert_eq!(t.label("/"), "/");
        assert_eq!(t.allow("/api/admin/partners"), Some("GET, POST"));
    }
}
