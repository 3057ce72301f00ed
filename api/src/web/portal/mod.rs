//! The partner portal: a partner's webhooks ([`webhooks`]: the list, creating one, each
//! endpoint's forms), each endpoint's delivery log ([`deliveries`], live), the event-type
//! catalogue and the key ([`reference`]). Pages and forms call the same
//! `muster_webhooks::subscriptions::Store` methods as `/api/partner/webhooks`, with the same
//! refusals, shown next to the field they are about.

mod deliveries;
mod reference;
pub mod texts;
mod webhooks;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use muster_webhooks::subscriptions::{Store, StoreError};
use warp::Filter;
use warp::http::StatusCode;

use super::Site;
use super::i18n::Lang;
use super::paths;
use crate::auth::{Partner, Viewer};
use crate::problem::Problem;
use crate::resources::webhooks::Hooks;
use crate::route::{Route, any};

pub use deliveries::{DeliveriesLive, LOG_EVERY, LogQuery};

/// The viewer as a partner; the admin has no webhooks of its own (403).
pub fn partner(viewer: &Viewer) -> Result<&Partner, Problem> {
    match viewer {
        Viewer::Partner(p) => Ok(p),
        Viewer::Admin => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "partners-only",
            "The portal is for partner API keys",
        )),
    }
}

/// The store's owner id of `viewer`'s webhooks.
fn owner(viewer: &Viewer) -> Result<String, Problem> {
    Ok(crate::resources::webhooks::owner(partner(viewer)?))
}

fn store(site: &Site) -> &Store {
    &site.state.webhooks
}

/// The signed-in partner's webhooks, changed through the same audited calls as its JSON routes.
fn hooks<'a>(site: &'a Site, viewer: &'a Viewer) -> Result<Hooks<'a>, Problem> {
    Ok(Hooks {
        store: store(site),
        partner: partner(viewer)?,
    })
}

/// Which field a refusal of the store is about, by the start of its message (`url: …`,
/// `eventTypes …`); `None` for the form as a whole.
pub fn field_of(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::Invalid(m) if m.starts_with("url") => Some("url"),
        StoreError::Invalid(m) if m.starts_with("eventTypes") => Some("event_types"),
        _ => None,
    }
}

/// A refusal's message next to its field, announced to screen readers.
fn refusal(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.error.field-error id=(id) role="alert" { (m) }
        }
    }
}

fn when(lang: Lang, at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (lang.ago(at, Utc::now())) }
    }
}

pub fn routes(site: &Site) -> Route {
    let page = || site.page_request();
    let post = || site.form_request();
    any([
        (paths::at(paths::WEBHOOKS).and(page()))
            .then(webhooks::list_page)
            .boxed(),
        (paths::at(paths::WEBHOOKS).and(post()))
            .then(webhooks::create)
            .boxed(),
        (paths::item_at(paths::WEBHOOKS)
            .and(warp::query::<LogQuery>())
            .and(page()))
        .then(deliveries::page)
        .boxed(),
        (paths::item_at(paths::WEBHOOKS).and(post()))
            .then(webhooks::act)
            .boxed(),
        (paths::at(paths::EVENT_TYPES).and(page()))
            .then(reference::catalogue_page)
            .boxed(),
        (paths::at(paths::KEY).and(page()))
            .then(reference::key_page)
            .boxed(),
        (paths::at(paths::KEY).and(post()))
            .then(reference::rotate)
            .boxed(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_field() {
        let e = |m: &str| StoreError::Invalid(m.into());
        assert_eq!(field_of(&e("url: a private address")), Some("url"));
        assert_eq!(
            field_of(&e("eventTypes: \"x\" is not one of")),
            Some("event_types")
        );
        assert_eq!(field_of(&e("a partner may have at most 10 webhooks")), None);
    }
}
