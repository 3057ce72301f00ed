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

use super::{Site, paths};
use crate::route::{Route, any};

pub use texts::AdminMsg;

/// The console's pages and forms.
pub fn routes(site: &Site) -> Route {
    let page = || site.page_request();
    let post = || site.form_request();
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
