//! The services' forms: register or update (`POST /services`, the registration JSON the admin
//! API takes, validated and health-checked by the same function), and remove
//! (`POST /services/{eventId}/remove`). The list and a service's page are `web::services`'.

use maud::{Markup, html};
use muster_ingest::EventServiceConfig;
use warp::http::StatusCode;
use warp::reply::Response;

use super::AdminMsg as M;
use super::partners::refusal;
use crate::problem::Problem;
use crate::resources::services::{register_service, remove_service};
use crate::web::form::{Fields, csrf_refused};
use crate::web::i18n::Msg;
use crate::web::layout::{self, Nav, csrf_field, document};
use crate::web::services::admin_only;
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// What the empty form starts from: the fields a registration needs.
const TEMPLATE: &str = r#"{
  "eventId": "",
  "serviceName": "",
  "endpoints": { "api": "https://", "healthCheck": "https://" },
  "name": "",
  "type": "festival",
  "capacity": 1000
}"#;

/// The registration form, holding `text` (the template when empty), `refused` next to it.
pub fn register_form(visit: &Visit, refused: Option<&Problem>, text: &str) -> Markup {
    let lang = visit.lang;
    let text = if text.is_empty() { TEMPLATE } else { text };
    html! {
        section aria-labelledby="register" {
            h2 #register { (lang.t(M::RegisterService)) }
            p { (lang.t(M::RegistrationNote)) }
            (refusal(refused))
            form.admin-form method="post" action=(paths::to(paths::SERVICES)) {
                (csrf_field(visit))
                div.field {
                    label for="registration" { (lang.t(M::Registration)) }
                    textarea #registration name="registration" rows="14" spellcheck="false"
                        aria-invalid=[refused.map(|_| "true")] { (text) }
                }
                button type="submit" { (lang.t(M::Register)) }
            }
        }
    }
}

/// A service page's forms: edit (the registration form holding its stored configuration) and
/// remove.
pub fn edit_forms(visit: &Visit, event_id: &str, config: &serde_json::Value) -> Markup {
    let lang = visit.lang;
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    html! {
        (register_form(visit, None, &text))
        section aria-labelledby="remove" {
            h2 #remove { (lang.t(M::Remove)) }
            form method="post" action=(paths::action(paths::SERVICES, event_id, paths::REMOVE)) {
                (csrf_field(visit))
                button.danger type="submit" { (lang.t(M::Remove)) }
            }
        }
    }
}

/// `POST /services`: registers, then shows the outcome (the webhook secret once); a refusal
/// shows the list again with the form as sent and the API's message next to it.
pub async fn register(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let text = fields.get("registration");
        let svc = serde_json::from_str::<EventServiceConfig>(text).map_err(|e| {
            Problem::unprocessable(
                "invalid-registration",
                "The registration is invalid",
                e.to_string(),
            )
        });
        let registered = match svc {
            Ok(svc) => register_service(&site.state.registrar, svc).await,
            Err(p) => Err(p),
        };
        let r = match registered {
            Ok(r) => r,
            Err(p) if p.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                let status = p.status();
                return crate::web::services::list(&visit, &site, &open, Some(&p), text, status)
                    .await;
            }
            Err(p) => return Err(p),
        };
        let lang = visit.lang;
        let event_id = r
            .service
            .config
            .get("eventId")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let title = lang.t(if r.created { M::Registered } else { M::Updated });
        let main = html! {
            h1 { (title) }
            dl.facts {
                dt { (lang.t(Msg::Event)) } dd { a href=(paths::item(paths::SERVICES, &event_id)) { (event_id) } }
                dt { (lang.t(M::InitialSync)) }
                dd { @match &r.initial_sync { Ok(()) => (lang.t(M::InitialSyncOk)), Err(e) => (e) } }
            }
            @if let Some(secret) = &r.webhook_secret {
                section.secret role="status" {
                    p { strong { (lang.t(M::WebhookSecretOnce)) } }
                    label for="secret" { (lang.t(M::WebhookSecret)) }
                    input #secret type="text" readonly value=(secret) size="70";
                }
            }
            p { a href=(paths::to(paths::SERVICES)) { (lang.t(Msg::Services)) } }
        };
        let page = document(&visit, title, Some(Nav::Services), &[], main);
        Ok(layout::respond(&visit, StatusCode::OK, page))
    })
    .await
}

/// `POST /services/{eventId}/remove`.
pub async fn remove(event_id: String, fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let event_id = layout::percent_decode(&event_id);
        remove_service(&site.state.registrar, &event_id).await?;
        Ok(layout::redirect(&visit, &paths::to(paths::SERVICES)))
    })
    .await
}
