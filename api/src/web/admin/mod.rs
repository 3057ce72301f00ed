//! The admin's console: services (register, edit, remove), partners (create, grants, rotate,
//! revoke, their webhooks' health), the audit log and the dead letters. Admin only: a partner's
//! session gets a 403 page. Every change calls the function its JSON route calls
//! (`resources::partners`, `resources::services`), so validation, audit entries and errors are
//! the API's own; a refusal shows the API's message next to the form.
//!
//! Forms post with the session's CSRF token and answer a 303 to the page they changed, except
//! those that show a secret once (a new partner's key, a rotated key, a new service's webhook
//! secret): they answer the page with the secret (`no-store`), since a redirect would need the
//! secret kept somewhere to show it after.

mod logs;
mod partners;
pub mod services;
mod texts;

use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::session::Visit;
use super::{Site, layout, paths};
use crate::route::{Route, any, with};

pub use texts::AdminMsg;

/// A form's fields as posted (`application/x-www-form-urlencoded`), repeated names kept (the
/// grants' checkboxes).
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let decode = |s: &str| layout::percent_decode(&s.replace('+', " "));
        Self(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// A posted form: its fields, and the visit (whose CSRF token it must carry).
fn form() -> impl Filter<Extract = (Fields,), Error = warp::Rejection> + Clone {
    warp::post()
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .map(|b: bytes::Bytes| Fields::parse(&b))
}

/// The 403 page, unless the form carries the visitor's CSRF token.
fn csrf_refused(visit: &Visit, fields: &Fields) -> Option<Response> {
    (!visit.csrf_ok(Some(fields.get("csrf"))))
        .then(|| layout::error_page(visit, StatusCode::FORBIDDEN, super::i18n::Msg::ErrorCsrf))
}

/// The console's pages and forms.
pub fn routes(site: &Site) -> Route {
    let page = || {
        warp::get()
            .and(site.sessions.visit())
            .and(with(site.clone()))
    };
    let post = || form().and(site.sessions.visit()).and(with(site.clone()));
    any([
        (paths::at(paths::PARTNERS).and(page()))
            .then(partners::list_page)
            .boxed(),
        (paths::at(paths::PARTNERS).and(post()))
            .then(partners::create)
            .boxed(),
        (paths::item_at(paths::PARTNERS).and(page()))
            .then(partners::partner_page)
            .boxed(),
        (paths::action_at(paths::PARTNERS, paths::GRANTS).and(post()))
            .then(partners::grants)
            .boxed(),
        (paths::action_at(paths::PARTNERS, paths::ROTATE).and(post()))
            .then(partners::rotate)
            .boxed(),
        (paths::action_at(paths::PARTNERS, paths::REVOKE).and(post()))
            .then(partners::revoke)
            .boxed(),
        (paths::at(paths::SERVICES).and(post()))
            .then(services::register)
            .boxed(),
        (paths::action_at(paths::SERVICES, paths::REMOVE).and(post()))
            .then(services::remove)
            .boxed(),
        (paths::at(paths::AUDIT).and(warp::query()).and(page()))
            .then(logs::audit_page)
            .boxed(),
        (paths::at(paths::DEAD_LETTERS)
            .and(warp::query())
            .and(page()))
        .then(logs::dead_letters_page)
        .boxed(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_keep_repeated_names_and_decode() {
        let f = Fields::parse(b"csrf=abc&event=e1&event=e%202&name=A+B&event=&x");
        assert_eq!(f.get("csrf"), "abc");
        assert_eq!(f.get("name"), "A B");
        assert_eq!(f.all("event"), ["e1", "e 2"]);
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.get("x"), "");
    }
}
