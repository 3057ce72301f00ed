//! The page shell every page shares (skip link, header with navigation, the viewer, the
//! language switch and sign-out, then the page's `main`), and the answers pages give: an HTML
//! page with its security headers and cookies, a redirect, an error page.

use maud::{DOCTYPE, Markup, html};
use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::assets::Asset;
use super::i18n::{Lang, Msg, Text};
use super::paths;
use super::session::Visit;
use crate::auth::{Tier, Viewer};
use crate::problem::Problem;

/// The entries of the main navigation; `None` for a page outside it (sign-in, errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Alerts,
    Services,
    Partners,
    Audit,
    DeadLetters,
    Webhooks,
    EventTypes,
    Key,
    Sql,
    Patterns,
    Forecasts,
}

/// Who a navigation entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Everyone,
    Admin,
    /// The partner portal: a partner's own webhooks and key.
    Partner,
    /// The analyst pages: the admin and premium partners.
    Analyst,
}

impl For {
    fn shows(self, viewer: &Viewer) -> bool {
        match self {
            Self::Everyone => true,
            Self::Admin => matches!(viewer, Viewer::Admin),
            Self::Partner => matches!(viewer, Viewer::Partner(_)),
            Self::Analyst => match viewer {
                Viewer::Admin => true,
                Viewer::Partner(p) => p.tier == Tier::Premium,
            },
        }
    }
}

impl Nav {
    /// Each entry with its page (its path's segment), label and audience, in order.
    const ENTRIES: [(Nav, &'static str, Msg, For); 12] = [
        (Nav::Overview, "", Msg::Overview, For::Everyone),
        (Nav::Alerts, paths::ALERTS, Msg::Alerts, For::Everyone),
        (Nav::Services, paths::SERVICES, Msg::Services, For::Admin),
        (Nav::Partners, paths::PARTNERS, Msg::Partners, For::Admin),
        (Nav::Audit, paths::AUDIT, Msg::AuditLog, For::Admin),
        (
            Nav::DeadLetters,
            paths::DEAD_LETTERS,
            Msg::DeadLetters,
            For::Admin,
        ),
        (Nav::Webhooks, paths::WEBHOOKS, Msg::Webhooks, For::Partner),
        (
            Nav::EventTypes,
            paths::EVENT_TYPES,
            Msg::EventTypes,
            For::Partner,
        ),
        (Nav::Key, paths::KEY, Msg::ApiKey, For::Partner),
        (Nav::Sql, paths::SQL, Msg::Sql, For::Analyst),
        (Nav::Patterns, paths::PATTERNS, Msg::Patterns, For::Analyst),
        (
            Nav::Forecasts,
            paths::FORECASTS,
            Msg::Forecasts,
            For::Analyst,
        ),
    ];
}

/// Pages may not run inline scripts or styles: everything comes from `/assets`.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   object-src 'none'";

/// htmx's own settings: no inline indicator styles (the CSP refuses them), no `eval`, requests
/// only to this origin, and no copies of pages in the browser's storage.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

/// A whole page: `title`, the main navigation with `nav` current, and `main`. `scripts` are
/// extra assets the page needs (uPlot on chart pages).
pub fn document(
    visit: &Visit,
    title: &str,
    nav: Option<Nav>,
    scripts: &[Asset],
    main: Markup,
) -> Markup {
    let lang = visit.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t(Msg::Product)) }
                meta name="htmx-config" content=(HTMX_CONFIG);
                link rel="icon" href=(Asset::Icon.url()) type="image/svg+xml";
                link rel="stylesheet" href=(Asset::Css.url());
                @for a in scripts.iter().filter(|a| a.url().ends_with(".css")) {
                    link rel="stylesheet" href=(a.url());
                }
                script src=(Asset::Htmx.url()) defer {}
                script src=(Asset::HtmxSse.url()) defer {}
                script src=(Asset::Js.url()) defer {}
                @for a in scripts.iter().filter(|a| a.url().ends_with(".js")) {
                    script src=(a.url()) defer {}
                }
            }
            body {
                a.skip href="#main" { (lang.t(Msg::SkipToContent)) }
                (top(visit, nav))
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

fn top(visit: &Visit, nav: Option<Nav>) -> Markup {
    let lang = visit.lang;
    let session = visit.session();
    html! {
        header.top {
            a.brand href=(paths::HOME) { (lang.t(Msg::Product)) }
            @if let Some(s) = session {
                nav aria-label=(lang.t(Msg::MainNavigation)) {
                    ul {
                        @for (entry, path, label, audience) in Nav::ENTRIES {
                            @if audience.shows(&s.viewer) {
                                li {
                                    a href=(paths::to(path)) aria-current=[(nav == Some(entry)).then_some("page")] {
                                        (lang.t(label))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.who {
                @if let Some(s) = session {
                    span.viewer {
                        (lang.t(Msg::SignedInAs)) " "
                        strong { (viewer_name(lang, &s.viewer)) }
                    }
                }
                (language_switch(visit))
                @if session.is_some() {
                    form method="post" action=(paths::to(paths::SIGN_OUT)) {
                        input type="hidden" name="csrf" value=(visit.csrf());
                        button.link type="submit" { (lang.t(Msg::SignOut)) }
                    }
                }
            }
        }
    }
}

fn viewer_name(lang: Lang, viewer: &Viewer) -> String {
    match viewer {
        Viewer::Admin => lang.t(Msg::Administrator).to_owned(),
        Viewer::Partner(p) => p.name.clone(),
    }
}

/// One button per other language: a form, so it works without JavaScript and carries its
/// CSRF token like every form.
fn language_switch(visit: &Visit) -> Markup {
    let lang = visit.lang;
    html! {
        form.lang method="post" action=(paths::to(paths::LANGUAGE)) {
            input type="hidden" name="csrf" value=(visit.csrf());
            input type="hidden" name="next" value=(visit.here);
            @for other in Lang::ALL.into_iter().filter(|l| *l != lang) {
                button.link type="submit" name="lang" value=(other.tag()) lang=(other.tag())
                    aria-label=(format!("{}: {}", lang.t(Msg::Language), other.name())) {
                    (other.name())
                }
            }
        }
    }
}

/// A hidden field with the visitor's CSRF token, for every form.
pub fn csrf_field(visit: &Visit) -> Markup {
    html! { input type="hidden" name="csrf" value=(visit.csrf()); }
}

/// A page of the main navigation, titled as its entry, answered 200.
pub fn nav_page(visit: &Visit, nav: Nav, main: Markup) -> Response {
    let label = Nav::ENTRIES
        .iter()
        .find(|(entry, ..)| *entry == nav)
        .map_or(Msg::Product, |(_, _, label, _)| *label);
    let page = document(visit, visit.lang.t(label), Some(nav), &[], main);
    respond(visit, StatusCode::OK, page)
}

/// A table's header row: a column per label.
pub fn columns<T: Text>(lang: Lang, labels: &[T]) -> Markup {
    html! {
        thead { tr {
            @for label in labels { th scope="col" { (lang.t(*label)) } }
        } }
    }
}

/// A filter's `<select>` named `name` with its label: "any" (the empty value) first, then each
/// `(value, text)` of `options`, the one equal to `current` selected.
pub fn choice<'a>(
    name: &str,
    label: &str,
    any: &str,
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
    current: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { (any) }
                @for (value, text) in options {
                    option value=(value) selected[current == Some(value)] { (text) }
                }
            }
        }
    }
}

/// `markup` as an HTML answer with the pages' headers and the visit's cookies.
pub fn respond(visit: &Visit, status: StatusCode, markup: Markup) -> Response {
    let mut res =
        warp::reply::with_status(warp::reply::html(markup.into_string()), status).into_response();
    page_headers(visit, &mut res);
    res
}

/// Headers of every page answer: no caching of what a session saw, the CSP, and the cookies.
pub fn page_headers(visit: &Visit, res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("cookie, accept-language, hx-request"),
    );
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    for c in visit.cookies() {
        add_cookie(res, &c);
    }
}

pub fn add_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A redirect after a form or to another page: `303 See Other`, or for htmx `HX-Redirect`
/// (htmx would otherwise swap the target page into the one it updates).
pub fn redirect(visit: &Visit, to: &str) -> Response {
    let mut res = if visit.htmx {
        let mut r = warp::reply().into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    page_headers(visit, &mut res);
    res
}

/// To the sign-in form, coming back here afterwards.
pub fn to_sign_in(visit: &Visit) -> Response {
    let next: String = url_encode(&visit.here);
    redirect(visit, &format!("{}?next={next}", paths::to(paths::SIGN_IN)))
}

/// Everything but RFC 3986's unreserved characters.
const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded for a path segment or a query value.
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ENCODED).to_string()
}

/// A path segment decoded (warp hands it over as sent).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An error page for `problem`, in the visitor's language, with the problem's status.
pub fn error(visit: &Visit, problem: &Problem) -> Response {
    let status = problem.status();
    let msg = match status {
        StatusCode::FORBIDDEN => Msg::ErrorForbidden,
        StatusCode::NOT_FOUND => Msg::ErrorNotFound,
        StatusCode::TOO_MANY_REQUESTS => Msg::ErrorRateLimited,
        StatusCode::SERVICE_UNAVAILABLE => Msg::ErrorUnavailable,
        _ => Msg::ErrorOther,
    };
    error_page(visit, status, msg)
}

/// An error page saying `msg`.
pub fn error_page(visit: &Visit, status: StatusCode, msg: Msg) -> Response {
    let lang = visit.lang;
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let main = html! {
        section.error {
            h1 { (title) }
            p { (lang.t(msg)) }
            p { a href=(paths::HOME) { (lang.t(Msg::BackToOverview)) } }
        }
    };
    respond(visit, status, document(visit, &title, None, &[], main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_through_their_links() {
        for id in ["expo-2026", "a b/c", "행사"] {
            assert_eq!(percent_decode(&url_encode(id)), id);
        }
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn encoded_paths_survive_a_query_string() {
        assert_eq!(
            url_encode("/alerts?kind=gate-down&x=a b"),
            "%2Falerts%3Fkind%3Dgate-down%26x%3Da%20b"
        );
    }
}
