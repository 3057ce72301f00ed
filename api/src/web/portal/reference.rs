//! `GET /event-types` (the catalogue of `GET /api/partner/webhooks/event-types` as a page:
//! each type's description, JSON Schema and example) and `GET /key` (the session's key: its
//! prefix, tier, grants, rate limit and what is left of it, as `GET /api/partner/key`, and
//! its rotation, `POST /key`).

use maud::html;
use muster_webhooks::payloads::catalogue;
use warp::http::StatusCode;
use warp::reply::Response;

use super::texts::P;
use super::{partner, refusal};
use crate::audit::Actor;
use crate::auth::Credential;
use crate::problem::Problem;
use crate::resources::partner::OwnKey;
use crate::resources::partners::{Rotate, rotate_key};
use crate::web::form::{Fields, csrf_refused};
use crate::web::i18n::Msg;
use crate::web::layout::{self, Nav, csrf_field, document};
use crate::web::paths;
use crate::web::session::Visit;
use crate::web::{Open, Site};

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `GET /event-types`.
pub async fn catalogue_page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        partner(&open.session.viewer)?;
        let lang = visit.lang;
        let main = html! {
            h1 { (lang.t(Msg::EventTypes)) }
            p { (lang.t(P::CatalogueIntro)) }
            @for e in catalogue().event_types {
                section.event-type id=(e.event_type.as_str()) {
                    h2 { code { (e.event_type.as_str()) } }
                    p { (e.description) }
                    details {
                        summary { (lang.t(P::Schema)) }
                        pre.schema { code { (pretty(&e.schema)) } }
                    }
                    details open {
                        summary { (lang.t(P::Example)) }
                        pre.example { code { (pretty(&e.example)) } }
                    }
                }
            }
        };
        Ok(layout::nav_page(&visit, Nav::EventTypes, main))
    })
    .await
}

/// `GET /key`.
pub async fn key_page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        key_view(&visit, &open, None, StatusCode::OK)
    })
    .await
}

/// The key's facts and the rotation form; `refused` is a refusal of that form, shown next to
/// its field.
fn key_view(
    visit: &Visit,
    open: &Open,
    refused: Option<&str>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let key = OwnKey::of(partner(&open.session.viewer)?)?;
    let lang = visit.lang;
    let main = html! {
        h1 { (lang.t(Msg::ApiKey)) }
        p { (lang.t(P::KeyIntro)) }
        dl.facts.key {
            dt { (lang.t(P::Partner)) } dd { (key.partner_name) }
            dt { (lang.t(P::Prefix)) } dd { code { (key.prefix) "…" } }
            dt { (lang.t(P::Tier)) } dd { (key.tier.as_str()) }
            dt { (lang.t(P::Limit)) }
            dd { (key.rate_limit.per_second) " " (lang.t(P::PerSecond)) " " (key.rate_limit.burst) }
            dt { (lang.t(P::Remaining)) }
            dd #remaining { (key.rate_limit.remaining) " / " (key.rate_limit.burst) }
            dt { (lang.t(P::Grants)) }
            dd { ul.grants { @for e in &key.events { li { code { (e) } } } } }
        }
        section aria-labelledby="rotate" {
            h2 #rotate { (lang.t(P::RotateKey)) }
            p { (lang.t(P::RotateKeyHelp)) }
            form method="post" action=(paths::to(paths::KEY)) {
                (csrf_field(visit))
                div.field {
                    label for="grace" { (lang.t(P::KeyGrace)) }
                    input #grace type="number" name="grace" min="0" value="3600" inputmode="numeric"
                        aria-describedby=[refused.map(|_| "grace-error")];
                    (refusal("grace-error", refused))
                }
                button type="submit" { (lang.t(P::RotateKey)) }
            }
        }
    };
    let page = document(visit, lang.t(Msg::ApiKey), Some(Nav::Key), &[], main);
    Ok(layout::respond(visit, status, page))
}

/// `POST /key`: rotates the session's own key (`POST /api/partner/key/rotate`, audited as the
/// partner's), moves the session to the new key, and shows it once.
pub async fn rotate(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(refused) = csrf_refused(&visit, &fields) {
        return refused;
    }
    site.page(&visit, async |mut open: Open| {
        let by = partner(&open.session.viewer)?;
        let body = match Rotate::from_form(fields.get("grace")) {
            Ok(body) => body,
            Err(p) => {
                let why = p.detail.as_deref().unwrap_or(&p.title);
                return key_view(&visit, &open, Some(why), StatusCode::UNPROCESSABLE_ENTITY);
            }
        };
        let (id, actor) = (by.id, Actor::partner(by));
        let new = rotate_key(&mut open.db, &site.state.feed.keys(), id, body, &actor).await?;
        // The key is made: a failure to move the session must not hide it.
        let moved = site
            .sessions
            .rebind(&open.session, &Credential::of_new_key(&new.api_key))
            .await
            .inspect_err(|e| tracing::warn!(error = %e.title, "moving a session to its new key"))
            .is_ok();
        let lang = visit.lang;
        let main = html! {
            h1 { (lang.t(P::NewKey)) }
            p role="status" { strong { (lang.t(P::KeyOnce)) } }
            div.secret {
                label for="secret" { (lang.t(P::NewKey)) }
                code #secret { (new.api_key) }
                button type="button" data-copy="secret" data-copied=(lang.t(P::Copied)) { (lang.t(P::Copy)) }
            }
            p { (lang.t(P::OldKeyUntil)) " " (new.previous_keys_valid_for_seconds) " " (lang.t(P::Seconds)) }
            @if !moved { p.error role="alert" { (lang.t(P::SessionNotMoved)) } }
            p { a href=(paths::to(paths::KEY)) { (lang.t(P::ToKey)) } }
        };
        let page = document(&visit, lang.t(P::NewKey), Some(Nav::Key), &[], main);
        Ok(layout::respond(&visit, StatusCode::OK, page))
    })
    .await
}
