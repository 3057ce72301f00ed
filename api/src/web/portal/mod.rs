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
use crate::route::{Route, any, with};

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

/// A posted form's fields in order, repeated names kept (the event-type checkboxes).
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// `application/x-www-form-urlencoded`, as browsers send it.
    pub fn parse(body: &[u8]) -> Self {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let text = String::from_utf8_lossy(body);
        Self(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A form body: small, urlencoded, read as [`Fields`].
fn fields() -> impl Filter<Extract = (Fields,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(16 * 1024)
        .and(warp::body::bytes())
        .map(|b: bytes::Bytes| Fields::parse(&b))
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
    let page = || {
        warp::get()
            .and(site.sessions.visit())
            .and(with(site.clone()))
    };
    let post = || {
        warp::post()
            .and(fields())
            .and(site.sessions.visit())
            .and(with(site.clone()))
    };
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
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_decode_them() {
        let f = Fields::parse(b"csrf=t&event_types=alert.raised&event_types=alert.resolved&url=http%3A%2F%2Fa.example%2Fh+x");
        assert_eq!(f.get("csrf"), Some("t"));
        assert_eq!(f.all("event_types"), ["alert.raised", "alert.resolved"]);
        assert_eq!(f.get("url"), Some("http://a.example/h x"));
        assert_eq!(f.get("missing"), None);
    }

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
