//! The web pages, served by `muster api` at `/` from the same binary: HTML rendered on the
//! server from the read models the JSON API serves (maud templates, checked at compile time),
//! htmx for interaction and its SSE extension for live updates, all of it embedded.
//!
//! Pages are not JSON routes, so they are not in `/openapi.json` nor declared with `route!`:
//! they answer HTML, and their errors are pages too ([`layout::error`]). Who a page shows is
//! the session's viewer, got through the JSON API's own auth on every request ([`session`]).

mod account;
mod admin;
mod alerts;
mod analyst;
pub mod assets;
mod board;
mod charts;
mod event;
pub mod form;
pub mod i18n;
pub mod layout;
mod live;
mod overview;
pub mod paths;
mod portal;
mod services;
pub mod session;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use self::session::{Session, Sessions, Signed, Visit};
use crate::problem::Problem;
use crate::read::Client;
use crate::route::{Ctx, Route, any, with};

/// What page handlers share.
#[derive(Clone)]
pub struct Site {
    pub sessions: Sessions,
    /// The hot reads (the in-memory view, else PostgreSQL); also how old numbers may be.
    pub reader: crate::read::Reader,
    pub state: crate::AppState,
    /// How often a quiet live stream sends a comment (`[api.feed] keep_alive`).
    pub keep_alive: std::time::Duration,
    /// `[api.sql]` and the per-key query slots, shared with `POST /api/premium/sql`.
    pub sql: crate::resources::sql::Sql,
}

/// What a signed-in page is drawn from.
pub struct Open {
    pub session: Session,
    pub db: Client,
    /// The change feed's newest id before anything was read: a page hands it to its live
    /// stream, which redraws whatever was committed after it (at worst once too often, never
    /// missing a change).
    pub head: i64,
}

impl Site {
    /// A page for the signed-in: `draw` gets the session, a database client and the feed's
    /// head. Signed out, the visitor is sent to the sign-in form; a problem, whether checking
    /// the session or drawing, is an error page.
    pub async fn page(
        &self,
        visit: &Visit,
        draw: impl AsyncFnOnce(Open) -> Result<Response, Problem>,
    ) -> Response {
        let session = match &visit.signed {
            Signed::In(s) => s.clone(),
            Signed::Out => return layout::to_sign_in(visit),
            Signed::Failed(p) => return layout::error(visit, p),
        };
        let opened = async {
            let head = self.state.feed.head().await?;
            let db = self.db().await?;
            draw(Open { session, db, head }).await
        };
        opened.await.unwrap_or_else(|p| layout::error(visit, &p))
    }

    /// A page's request: a GET with the visit (its session, language, CSRF token) and the site.
    pub fn page_request(&self) -> BoxedFilter<(Visit, Site)> {
        warp::get()
            .and(self.sessions.visit())
            .and(with(self.clone()))
            .boxed()
    }

    /// A form's request: a POST with its fields, the visit (whose CSRF token the form must
    /// carry: [`form::csrf_refused`]) and the site.
    pub fn form_request(&self) -> BoxedFilter<(form::Fields, Visit, Site)> {
        form::form()
            .and(self.sessions.visit())
            .and(with(self.clone()))
            .boxed()
    }

    pub async fn db(&self) -> Result<Client, Problem> {
        Ok(self.state.pool.get().await?)
    }
}

/// Every page, its assets and its live streams.
pub fn routes(ctx: &Ctx) -> Route {
    let site = Site {
        sessions: Sessions {
            pool: ctx.state.pool.clone(),
            auth: ctx.auth.clone(),
            cfg: ctx.cfg.web.clone(),
        },
        reader: ctx.reader(),
        state: ctx.state.clone(),
        keep_alive: ctx.cfg.feed.keep_alive,
        sql: crate::resources::sql::Sql::of(ctx),
    };
    let page = || site.page_request();
    any([
        assets::routes(),
        account::routes(&site),
        (warp::path::end().and(warp::query()).and(page()))
            .then(overview::page)
            .boxed(),
        (paths::at(paths::ALERTS).and(warp::query()).and(page()))
            .then(alerts::page)
            .boxed(),
        (paths::item_at(paths::EVENTS).and(page()))
            .then(event::page)
            .boxed(),
        (paths::at(paths::SERVICES).and(page()))
            .then(services::list_page)
            .boxed(),
        (paths::item_at(paths::SERVICES).and(page()))
            .then(services::service_page)
            .boxed(),
        admin::routes(&site),
        portal::routes(&site),
        analyst::routes(&site),
        live::routes(&site),
    ])
}
