//! The forms of the shell: sign-in (`GET/POST /sign-in`), sign-out (`POST /sign-out`) and the
//! language switch (`POST /language`). Each POST checks its CSRF token first: a form without
//! the visitor's token is refused with a 403 page, whatever else it holds.

use maud::html;
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::Site;
use super::i18n::{Lang, Msg};
use super::layout::{self, csrf_field, document};
use super::paths;
use super::session::{LANG_COOKIE, Visit, cookie, local_path};
use crate::route::{Route, any, with};

/// The fields the shell's forms post (and the sign-in page's query): each form reads the
/// ones it has, and every POST is refused without its `csrf`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Form {
    csrf: Option<String>,
    /// Where to go afterwards: a local path only ([`local_path`]).
    next: Option<String>,
    /// Sign-in: the admin token or a partner API key.
    secret: String,
    /// The language switch: a tag of [`Lang`].
    lang: String,
}

/// A form body: small, urlencoded.
fn form() -> impl Filter<Extract = (Form,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(16 * 1024).and(warp::body::form::<Form>())
}

pub fn routes(site: &Site) -> Route {
    let visit = || site.sessions.visit();
    // A form posted: its fields, then the visit that checks its CSRF token.
    let post = || warp::post().and(form()).and(visit());
    any([
        paths::at(paths::SIGN_IN)
            .and(warp::get())
            .and(warp::query::<Form>())
            .and(visit())
            .map(|q: Form, visit: Visit| {
                if visit.session().is_some() {
                    return layout::redirect(&visit, local_path(q.next.as_deref()));
                }
                sign_in_page(&visit, q.next.as_deref(), false)
            })
            .boxed(),
        (paths::at(paths::SIGN_IN)
            .and(post())
            .and(with(site.clone())))
        .then(sign_in)
        .boxed(),
        (paths::at(paths::SIGN_OUT)
            .and(post())
            .and(with(site.clone())))
        .then(sign_out)
        .boxed(),
        (paths::at(paths::LANGUAGE).and(post()))
            .map(language)
            .boxed(),
    ])
}

fn sign_in_page(visit: &Visit, next: Option<&str>, failed: bool) -> Response {
    let lang = visit.lang;
    let main = html! {
        section.sign-in {
            h1 { (lang.t(Msg::SignIn)) }
            p { (lang.t(Msg::SignInIntro)) }
            @if failed {
                p.error role="alert" { (lang.t(Msg::SignInFailed)) }
            }
            form method="post" action=(paths::to(paths::SIGN_IN)) {
                (csrf_field(visit))
                input type="hidden" name="next" value=(local_path(next));
                label for="secret" { (lang.t(Msg::Credential)) }
                input #secret type="password" name="secret" required autocomplete="current-password"
                    autofocus aria-invalid=[failed.then_some("true")];
                button type="submit" { (lang.t(Msg::SignIn)) }
            }
        }
    };
    let status = if failed {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    layout::respond(
        visit,
        status,
        document(visit, lang.t(Msg::SignIn), None, &[], main),
    )
}

fn csrf_refused(visit: &Visit) -> Response {
    layout::error_page(visit, StatusCode::FORBIDDEN, Msg::ErrorCsrf)
}

async fn sign_in(form: Form, visit: Visit, site: Site) -> Response {
    if !visit.csrf_ok(form.csrf.as_deref()) {
        return csrf_refused(&visit);
    }
    let credential = match site.sessions.auth.credential(&form.secret).await {
        Ok(c) => c,
        Err(p) if p.status() == StatusCode::UNAUTHORIZED => {
            return sign_in_page(&visit, form.next.as_deref(), true);
        }
        Err(p) => return layout::error(&visit, &p),
    };
    match site.sessions.open(&credential).await {
        Ok((id, _)) => {
            let mut res = layout::redirect(&visit, local_path(form.next.as_deref()));
            layout::add_cookie(&mut res, &site.sessions.session_cookie(&id, visit.secure));
            res
        }
        Err(p) => layout::error(&visit, &p),
    }
}

async fn sign_out(form: Form, visit: Visit, site: Site) -> Response {
    if !visit.csrf_ok(form.csrf.as_deref()) {
        return csrf_refused(&visit);
    }
    if let Some(session) = visit.session()
        && let Err(p) = site.sessions.close(session).await
    {
        return layout::error(&visit, &p);
    }
    let mut res = layout::redirect(&visit, &paths::to(paths::SIGN_IN));
    let gone = cookie(super::session::SESSION_COOKIE, "", Some(0), visit.secure);
    layout::add_cookie(&mut res, &gone);
    res
}

fn language(form: Form, visit: Visit) -> Response {
    if !visit.csrf_ok(form.csrf.as_deref()) {
        return csrf_refused(&visit);
    }
    let Some(lang) = Lang::from_tag(&form.lang) else {
        return layout::error_page(&visit, StatusCode::BAD_REQUEST, Msg::ErrorOther);
    };
    let mut res = layout::redirect(&visit, local_path(form.next.as_deref()));
    let year = 365 * 24 * 3600;
    layout::add_cookie(
        &mut res,
        &cookie(LANG_COOKIE, lang.tag(), Some(year), visit.secure),
    );
    res.into_response()
}
