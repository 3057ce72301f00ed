//! `/partners` (every partner, and the create form) and `/partners/{id}` (its keys, its grants,
//! rotation, revocation, its webhook endpoints with their delivery counts), with their forms.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use muster_webhooks::subscriptions::Endpoint;
use warp::http::StatusCode;
use warp::reply::Response;

use super::AdminMsg as M;
use crate::audit::Actor;
use crate::auth::Tier;
use crate::problem::Problem;
use crate::resources::partners::{
    self as api, KnownEvent, NewPartner, PartnerInfo, Rotate, RotatedKey,
};
use crate::web::form::{Fields, csrf_refused};
use crate::web::i18n::{Lang, Msg};
use crate::web::layout::{self, Nav, csrf_field, document};
use crate::web::services::admin_only;
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// The delivery states counted per endpoint, in the order shown.
const STATES: [(&str, M); 4] = [
    ("pending", M::Pending),
    ("delivered", M::Delivered),
    ("failed", M::Failed),
    ("cancelled", M::Cancelled),
];

/// `GET /partners`.
pub async fn list_page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        list(&visit, &open, None, StatusCode::OK).await
    })
    .await
}

/// The list with the create form, `refused` showing next to it.
async fn list(
    visit: &Visit,
    open: &Open,
    refused: Option<&Problem>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let partners = api::partners(&open.db).await?;
    let events = api::known_events(&open.db).await?;
    let lang = visit.lang;
    let main = html! {
        h1 { (lang.t(Msg::Partners)) }
        p { (lang.t(M::PartnersIntro)) }
        div.scroll {
            table.partners {
                caption.sr-only { (lang.t(Msg::Partners)) }
                thead { tr {
                    th scope="col" { (lang.t(M::Name)) }
                    th scope="col" { (lang.t(M::Tier)) }
                    th scope="col" { (lang.t(M::GrantedEvents)) }
                    th scope="col" { (lang.t(M::KeyPrefix)) }
                    th scope="col" { (lang.t(M::State)) }
                } }
                tbody {
                    @for p in &partners {
                        tr {
                            th scope="row" { a href=(paths::item(paths::PARTNERS, &p.partner_id)) { (p.name) } }
                            td { (p.tier.as_str()) }
                            td { (p.event_ids.join(", ")) }
                            td { code { (live_prefixes(p).join(", ")) } }
                            td { (state(lang, p)) }
                        }
                    }
                }
            }
        }
        @if partners.is_empty() { p.empty { (lang.t(M::NoPartners)) } }
        section aria-labelledby="create" {
            h2 #create { (lang.t(M::CreatePartner)) }
            (refusal(refused))
            form.admin-form method="post" action=(paths::to(paths::PARTNERS)) {
                (csrf_field(visit))
                div.field {
                    label for="name" { (lang.t(M::Name)) }
                    input #name name="name" required aria-invalid=[refused.map(|_| "true")];
                }
                div.field {
                    label for="tier" { (lang.t(M::Tier)) }
                    select #tier name="tier" {
                        @for t in Tier::ALL { option value=(t.as_str()) { (t.as_str()) } }
                    }
                }
                (event_choice(lang, &events, &[]))
                button type="submit" { (lang.t(M::Create)) }
            }
        }
    };
    Ok(layout::respond(
        visit,
        status,
        document(visit, lang.t(Msg::Partners), Some(Nav::Partners), &[], main),
    ))
}

/// The API's refusal of a form, next to it.
pub fn refusal(refused: Option<&Problem>) -> Markup {
    html! {
        @if let Some(p) = refused {
            p.error role="alert" {
                (p.title)
                @if let Some(d) = &p.detail { ": " (d) }
            }
        }
    }
}

/// Checkboxes of every known event (named `event`), those of `granted` checked; granted ids
/// no longer known are listed too, so saving keeps them unless unticked.
fn event_choice(lang: Lang, events: &[KnownEvent], granted: &[String]) -> Markup {
    let gone: Vec<&String> = granted
        .iter()
        .filter(|g| !events.iter().any(|e| &e.event_id == *g))
        .collect();
    html! {
        fieldset.event-pick {
            legend { (lang.t(M::GrantedEvents)) }
            @if events.is_empty() && gone.is_empty() { p.empty { (lang.t(M::NoKnownEvents)) } }
            @for e in events {
                label {
                    input type="checkbox" name="event" value=(e.event_id)
                        checked[granted.contains(&e.event_id)];
                    " " (e.name) " " code { (e.event_id) }
                }
            }
            @for g in gone {
                label {
                    input type="checkbox" name="event" value=(g) checked;
                    " " code { (g) }
                }
            }
        }
    }
}

fn live_prefixes(p: &PartnerInfo) -> Vec<&str> {
    let now = Utc::now();
    p.keys
        .iter()
        .filter(|k| k.revoked_at.is_none_or(|r| r > now))
        .map(|k| k.key_prefix.as_str())
        .collect()
}

fn state(lang: Lang, p: &PartnerInfo) -> &'static str {
    if p.revoked_at.is_some() {
        lang.t(M::Revoked)
    } else {
        lang.t(M::Active)
    }
}

/// `POST /partners`: creates it and shows its key once.
pub async fn create(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |mut open: Open| {
        admin_only(&open.session.viewer)?;
        let body = match fields.get("tier").parse::<Tier>() {
            Ok(tier) => Ok(NewPartner {
                name: fields.get("name").to_owned(),
                tier,
                event_ids: fields.all("event"),
            }),
            Err(e) => Err(Problem::unprocessable(
                "invalid-partner",
                "The partner is invalid",
                e,
            )),
        };
        let created = match body {
            Ok(body) => api::create_partner(&mut open.db, body).await,
            Err(p) => Err(p),
        };
        match created {
            Ok(c) => Ok(key_page(
                &visit,
                &c.partner_id.to_string(),
                &c.name,
                &c.api_key,
            )),
            Err(p) if p.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                list(&visit, &open, Some(&p), p.status()).await
            }
            Err(p) => Err(p),
        }
    })
    .await
}

/// A key shown once, with the way back to its partner.
fn key_page(visit: &Visit, partner_id: &str, name: &str, key: &str) -> Response {
    let lang = visit.lang;
    let main = html! {
        h1 { (name) }
        section.secret role="status" {
            p { strong { (lang.t(M::KeyOnce)) } }
            label for="key" { (lang.t(M::NewKey)) }
            input #key type="text" readonly value=(key) size="70";
        }
        p { a href=(paths::item(paths::PARTNERS, partner_id)) { (name) } }
    };
    layout::respond(
        visit,
        StatusCode::OK,
        document(visit, lang.t(Msg::Partners), Some(Nav::Partners), &[], main),
    )
}

/// `GET /partners/{id}`.
pub async fn partner_page(id: String, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let id = layout::percent_decode(&id);
        detail(&visit, &site, &open, &id, None, StatusCode::OK).await
    })
    .await
}

async fn detail(
    visit: &Visit,
    site: &Site,
    open: &Open,
    id: &str,
    refused: Option<&Problem>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let Some(p) = api::partners(&open.db)
        .await?
        .into_iter()
        .find(|p| p.partner_id == id)
    else {
        return Err(Problem::not_found(
            "No such partner",
            format!("no partner {id}"),
        ));
    };
    let events = api::known_events(&open.db).await?;
    let store = &site.state.webhooks;
    let endpoints = store.list(id).await?;
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    for (endpoint, state, n) in store.delivery_counts(id).await? {
        counts.insert((endpoint, state), n);
    }
    let lang = visit.lang;
    let active = p.revoked_at.is_none();
    let main = html! {
        h1 { (p.name) }
        dl.facts {
            dt { (lang.t(M::Tier)) } dd { (p.tier.as_str()) }
            dt { (lang.t(M::State)) } dd { (state(lang, &p)) }
            dt { (lang.t(M::CreatedAt)) } dd { (utc(p.created_at)) }
            dt { (lang.t(M::GrantedEvents)) } dd { (p.event_ids.join(", ")) }
        }
        h2 { (lang.t(M::Keys)) }
        div.scroll { table {
            thead { tr {
                th scope="col" { (lang.t(M::KeyPrefix)) }
                th scope="col" { (lang.t(M::CreatedAt)) }
                th scope="col" { (lang.t(M::Ends)) }
            } }
            tbody { @for k in &p.keys { tr {
                td { code { (k.key_prefix) } }
                td { (utc(k.created_at)) }
                td { (k.revoked_at.map(utc).unwrap_or_default()) }
            } } }
        } }
        @if active {
            section aria-labelledby="grants" {
                h2 #grants { (lang.t(M::GrantedEvents)) }
                (refusal(refused))
                form.admin-form method="post" action=(paths::action(paths::PARTNERS, id, paths::GRANTS)) {
                    (csrf_field(visit))
                    (event_choice(lang, &events, &p.event_ids))
                    button type="submit" { (lang.t(M::SaveGrants)) }
                }
            }
            section aria-labelledby="rotate" {
                h2 #rotate { (lang.t(M::Rotate)) }
                form.admin-form method="post" action=(paths::action(paths::PARTNERS, id, paths::ROTATE)) {
                    (csrf_field(visit))
                    div.field {
                        label for="grace" { (lang.t(M::Grace)) }
                        input #grace type="number" name="grace" min="0" value="0" inputmode="numeric";
                    }
                    button type="submit" { (lang.t(M::Rotate)) }
                }
            }
            section aria-labelledby="revoke" {
                h2 #revoke { (lang.t(M::Revoke)) }
                p { (lang.t(M::RevokeNote)) }
                form method="post" action=(paths::action(paths::PARTNERS, id, paths::REVOKE)) {
                    (csrf_field(visit))
                    button.danger type="submit" { (lang.t(M::Revoke)) }
                }
            }
        }
        h2 { (lang.t(M::Webhooks)) }
        (webhooks(lang, &endpoints, &counts))
        p { a href=(paths::to(paths::PARTNERS)) { (lang.t(M::Back)) } }
    };
    Ok(layout::respond(
        visit,
        status,
        document(visit, &p.name, Some(Nav::Partners), &[], main),
    ))
}

/// Each endpoint with its delivery counts by state and why it fails, if it does.
fn webhooks(lang: Lang, endpoints: &[Endpoint], counts: &HashMap<(String, String), i64>) -> Markup {
    html! {
        @if endpoints.is_empty() {
            p.empty { (lang.t(M::NoWebhooks)) }
        } @else {
            div.scroll { table.webhooks {
                thead { tr {
                    th scope="col" { (lang.t(M::Url)) }
                    th scope="col" { (lang.t(M::EventTypes)) }
                    @for (_, label) in STATES { th scope="col" { (lang.t(label)) } }
                    th scope="col" { (lang.t(M::State)) }
                } }
                tbody { @for e in endpoints { tr {
                    th scope="row" { code { (e.url) } }
                    td { (e.event_types.join(", ")) }
                    @for (state, _) in STATES {
                        td.num { (lang.int(counts.get(&(e.id.clone(), state.to_owned())).copied().unwrap_or(0))) }
                    }
                    td {
                        @if let Some(at) = e.disabled_at {
                            (lang.t(M::Disabled)) " " (utc(at))
                            @if let Some(r) = &e.disabled_reason { ": " (r) }
                        } @else if let Some(since) = e.failing_since {
                            (lang.t(M::FailingSince)) " " (utc(since))
                        } @else {
                            (lang.t(M::Healthy))
                        }
                    }
                } } }
            } }
        }
    }
}

/// A time as UTC, to the second (the console's times are all UTC, as its filters).
pub fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The partner id of an action's path, or the not-found page's problem.
fn partner_id(id: &str) -> Result<uuid::Uuid, Problem> {
    let id = layout::percent_decode(id);
    id.parse()
        .map_err(|_| Problem::not_found("No such partner", format!("no partner {id}")))
}

/// `POST /partners/{id}/grants`.
pub async fn grants(id: String, fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |mut open: Open| {
        admin_only(&open.session.viewer)?;
        let uuid = partner_id(&id)?;
        match api::set_grants(
            &mut open.db,
            &site.state.feed.keys(),
            uuid,
            fields.all("event"),
        )
        .await
        {
            Ok(_) => Ok(layout::redirect(
                &visit,
                &paths::item(paths::PARTNERS, &uuid.to_string()),
            )),
            Err(p) if p.status() == StatusCode::UNPROCESSABLE_ENTITY => {
                detail(
                    &visit,
                    &site,
                    &open,
                    &uuid.to_string(),
                    Some(&p),
                    p.status(),
                )
                .await
            }
            Err(p) => Err(p),
        }
    })
    .await
}

/// `POST /partners/{id}/rotate`: the new key, shown once.
pub async fn rotate(id: String, fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |mut open: Open| {
        admin_only(&open.session.viewer)?;
        let uuid = partner_id(&id)?;
        let RotatedKey { api_key, .. } = api::rotate_key(
            &mut open.db,
            &site.state.feed.keys(),
            uuid,
            Rotate::from_form(fields.get("grace"))?,
            &Actor::Admin,
        )
        .await?;
        let name = api::partners(&open.db)
            .await?
            .into_iter()
            .find(|p| p.partner_id == uuid.to_string())
            .map(|p| p.name)
            .unwrap_or_default();
        Ok(key_page(&visit, &uuid.to_string(), &name, &api_key))
    })
    .await
}

/// `POST /partners/{id}/revoke`.
pub async fn revoke(id: String, fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |mut open: Open| {
        admin_only(&open.session.viewer)?;
        let uuid = partner_id(&id)?;
        api::revoke_partner(&mut open.db, &site.state.feed.keys(), uuid).await?;
        Ok(layout::redirect(
            &visit,
            &paths::item(paths::PARTNERS, &uuid.to_string()),
        ))
    })
    .await
}
