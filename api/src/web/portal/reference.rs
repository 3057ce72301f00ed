//! `GET /event-types` (the catalogue of `GET /api/partner/webhooks/event-types` as a page:
//! each type's description, JSON Schema and example) and `GET /key` (the session's key: its
//! prefix, tier, grants, rate limit and what is left of it, as `GET /api/partner/key`).

use maud::html;
use muster_webhooks::payloads::catalogue;
use warp::reply::Response;

use super::partner;
use super::texts::P;
use crate::resources::partner::OwnKey;
use crate::web::i18n::Msg;
use crate::web::layout::{self, Nav};
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
        };
        Ok(layout::nav_page(&visit, Nav::Key, main))
    })
    .await
}
