//! `GET /webhooks` (the partner's endpoints and the create form), `POST /webhooks` (create),
//! and `POST /webhooks/{id}` (one endpoint's forms: test, event types, rotate, enable,
//! delete, replay). A refused form is drawn again with the API's message next to its field;
//! a new secret is shown once on the answer to the form; everything else redirects back (303).

use maud::{Markup, html};
use muster_webhooks::EventType;
use muster_webhooks::log::{ReplayRequest, TestEvent};
use muster_webhooks::subscriptions::{Endpoint, EndpointWithSecret, NewEndpoint, UpdateEndpoint};
use warp::http::StatusCode;
use warp::reply::Response;

use super::texts::P;
use super::{field_of, hooks, owner, refusal, store, when};
use crate::web::form::{Fields, csrf_refused};
use crate::web::i18n::Lang;
use crate::web::layout::{self, Nav, columns, csrf_field, document};
use crate::web::paths;
use crate::web::session::Visit;
use crate::web::{Open, Site};

/// What a form left to show again: what was typed and the refusal, by field.
#[derive(Debug, Default)]
pub struct Refused {
    pub url: String,
    pub types: Vec<String>,
    pub field: Option<&'static str>,
    pub message: Option<String>,
}

impl Refused {
    fn at(&self, field: &str) -> Option<&str> {
        (self.field == Some(field))
            .then_some(self.message.as_deref())
            .flatten()
    }

    fn general(&self) -> Option<&str> {
        self.field
            .is_none()
            .then_some(self.message.as_deref())
            .flatten()
    }
}

/// `GET /webhooks`.
pub async fn list_page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        list(&visit, &site, &open, &Refused::default(), StatusCode::OK).await
    })
    .await
}

async fn list(
    visit: &Visit,
    site: &Site,
    open: &Open,
    refused: &Refused,
    status: StatusCode,
) -> Result<Response, crate::problem::Problem> {
    let endpoints = store(site).list(&owner(&open.session.viewer)?).await?;
    let lang = visit.lang;
    let main = html! {
        h1 { (lang.t(crate::web::i18n::Msg::Webhooks)) }
        p { (lang.t(P::WebhooksIntro)) }
        div.scroll {
            table.webhooks {
                caption.sr-only { (lang.t(crate::web::i18n::Msg::Webhooks)) }
                (columns(lang, &[P::Url, P::EventTypes, P::State, P::Created]))
                tbody {
                    @for e in &endpoints {
                        tr {
                            td.url { a href=(paths::item(paths::WEBHOOKS, &e.id)) { (e.url) } }
                            td { (types(&e.event_types)) }
                            td { (state(lang, e)) }
                            td { (when(lang, e.created_at)) }
                        }
                    }
                }
            }
            @if endpoints.is_empty() { p.empty { (lang.t(P::NoWebhooks)) } }
        }
        h2 { (lang.t(P::Create)) }
        form.portal-form method="post" action=(paths::to(paths::WEBHOOKS)) {
            (csrf_field(visit))
            (refusal("create-error", refused.general()))
            div.field {
                label for="url" { (lang.t(P::Url)) }
                input #url type="url" name="url" required value=(refused.url) placeholder="https://"
                    aria-describedby="url-help url-error"
                    aria-invalid=[refused.at("url").map(|_| "true")];
                p.note #url-help { (lang.t(P::UrlHelp)) }
                (refusal("url-error", refused.at("url")))
            }
            (type_boxes(lang, &refused.types, refused.at("event_types")))
            button type="submit" { (lang.t(P::CreateButton)) }
        }
    };
    let page = document(
        visit,
        lang.t(crate::web::i18n::Msg::Webhooks),
        Some(Nav::Webhooks),
        &[],
        main,
    );
    Ok(layout::respond(visit, status, page))
}

/// The event types as a list.
pub fn types(types: &[String]) -> Markup {
    html! { @for t in types { code.tag { (t) } " " } }
}

/// An endpoint's state in a word: active, failing since when, or disabled with the reason.
pub fn state(lang: Lang, e: &Endpoint) -> Markup {
    html! {
        @if let Some(at) = e.disabled_at {
            span.state.state-disabled { (lang.t(P::Disabled)) } " "
            span.sub { (when(lang, at)) @if let Some(r) = &e.disabled_reason { ": " (r) } }
        } @else if let Some(since) = e.failing_since {
            span.state.state-failing { (lang.t(P::FailingSince)) } " " (when(lang, since))
        } @else {
            span.state.state-ok { (lang.t(P::Active)) }
        }
    }
}

/// A checkbox per event type, `checked` ticked, with the refusal about them.
pub fn type_boxes(lang: Lang, checked: &[String], error: Option<&str>) -> Markup {
    html! {
        fieldset.types aria-describedby="types-error" {
            legend { (lang.t(P::EventTypes)) }
            @for t in EventType::ALL {
                label.check {
                    input type="checkbox" name="event_types" value=(t.as_str())
                        checked[checked.iter().any(|c| c == t.as_str())];
                    " " code { (t.as_str()) }
                }
            }
            (super::refusal("types-error", error))
        }
    }
}

/// `POST /webhooks`: creates an endpoint, then shows its secret once.
pub async fn create(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(refused) = csrf_refused(&visit, &fields) {
        return refused;
    }
    site.page(&visit, async |open: Open| {
        let new = NewEndpoint {
            url: fields.get("url").to_owned(),
            event_types: fields.all("event_types"),
            retry_schedule: None,
        };
        let (url, types) = (new.url.clone(), new.event_types.clone());
        match hooks(&site, &open.session.viewer)?.create(new).await {
            Ok(made) => Ok(secret_page(&visit, &made, P::CreatedTitle)),
            Err(e) => {
                let refused = Refused {
                    url,
                    types,
                    field: field_of(&e),
                    message: Some(refusal_text(e)?),
                };
                list(
                    &visit,
                    &site,
                    &open,
                    &refused,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
        }
    })
    .await
}

/// The message of a refusal the form shows; other failures are the error page's.
fn refusal_text(
    e: muster_webhooks::subscriptions::StoreError,
) -> Result<String, crate::problem::Problem> {
    match e {
        muster_webhooks::subscriptions::StoreError::Invalid(m) => Ok(m),
        other => Err(other.into()),
    }
}

/// The answer to creating an endpoint or rotating its secret: the secret, once, with a copy
/// button and how to verify deliveries with it.
fn secret_page(visit: &Visit, made: &EndpointWithSecret, title: P) -> Response {
    let lang = visit.lang;
    let main = html! {
        h1 { (lang.t(title)) }
        p.note { (made.endpoint.url) }
        p role="status" { strong { (lang.t(P::SecretOnce)) } }
        div.secret {
            label for="secret" { (lang.t(P::Secret)) }
            code #secret { (made.secret) }
            button type="button" data-copy="secret" data-copied=(lang.t(P::Copied)) { (lang.t(P::Copy)) }
        }
        h2 { (lang.t(P::Verify)) }
        p { (lang.t(P::VerifyIntro)) }
        @for (name, code) in snippets(&made.secret) {
            h3 { (name) }
            pre.snippet { code { (code) } }
        }
        p { a href=(paths::item(paths::WEBHOOKS, &made.endpoint.id)) { (lang.t(P::ToWebhook)) } }
    };
    let page = document(visit, lang.t(title), Some(Nav::Webhooks), &[], main);
    layout::respond(visit, StatusCode::OK, page)
}

/// How to verify a delivery with `secret` in Python, Node and Go, each with its language's
/// Standard Webhooks library.
pub fn snippets(secret: &str) -> [(&'static str, String); 3] {
    [
        (
            "Python (pip install standardwebhooks)",
            format!(
                "from standardwebhooks.webhooks import Webhook\n\n\
                 wh = Webhook(\"{secret}\")\n\
                 # body: the raw request body; headers: the request's headers\n\
                 message = wh.verify(body, headers)  # raises if the signature is wrong"
            ),
        ),
        (
            "Node (npm install standardwebhooks)",
            format!(
                "import {{ Webhook }} from \"standardwebhooks\";\n\n\
                 const wh = new Webhook(\"{secret}\");\n\
                 // body: the raw request body as a string; headers: the request's headers\n\
                 const message = wh.verify(body, headers); // throws if the signature is wrong"
            ),
        ),
        (
            "Go (github.com/standard-webhooks/standard-webhooks/libraries/go)",
            format!(
                "import standardwebhooks \"github.com/standard-webhooks/standard-webhooks/libraries/go\"\n\n\
                 wh, err := standardwebhooks.NewWebhook(\"{secret}\")\n\
                 // body: the raw request body; r.Header: the request's headers\n\
                 err = wh.Verify(body, r.Header) // non-nil if the signature is wrong"
            ),
        ),
    ]
}

/// The forms of `POST /webhooks/{id}`, by their `action` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Test,
    Types,
    Rotate,
    Enable,
    Delete,
    Replay,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "test" => Self::Test,
            "types" => Self::Types,
            "rotate" => Self::Rotate,
            "enable" => Self::Enable,
            "delete" => Self::Delete,
            "replay" => Self::Replay,
            _ => return None,
        })
    }
}

/// `POST /webhooks/{id}`: one of the endpoint page's forms.
pub async fn act(id: String, fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(refused) = csrf_refused(&visit, &fields) {
        return refused;
    }
    let id = layout::percent_decode(&id);
    site.page(&visit, async |open: Open| {
        let hooks = hooks(&site, &open.session.viewer)?;
        let back = paths::item(paths::WEBHOOKS, &id);
        let action = Action::parse(fields.get("action"));
        let done = match action {
            Some(Action::Test) => {
                let t = EventType::parse(fields.get("event_type"));
                match t {
                    Some(event_type) => hooks
                        .send_test(&id, TestEvent { event_type })
                        .await
                        .map(|_| ()),
                    None => Err(invalid("eventType: choose one of the event types")),
                }
            }
            Some(Action::Types) => {
                let update = UpdateEndpoint {
                    event_types: fields.all("event_types"),
                };
                hooks.update_types(&id, update).await.map(|_| ())
            }
            Some(Action::Rotate) => {
                let grace = fields.opt("grace_seconds").map(str::parse::<u32>);
                match grace.transpose() {
                    Err(_) => Err(invalid("graceSeconds: a whole number of seconds")),
                    Ok(grace) => match hooks.rotate(&id, grace.unwrap_or(0)).await {
                        Ok(made) => return Ok(secret_page(&visit, &made, P::RotatedTitle)),
                        Err(e) => Err(e),
                    },
                }
            }
            Some(Action::Enable) => hooks.enable(&id).await.map(|_| ()),
            Some(Action::Delete) => {
                hooks.delete(&id).await?;
                return Ok(layout::redirect(&visit, &paths::to(paths::WEBHOOKS)));
            }
            Some(Action::Replay) => {
                let req = replay_request(&fields);
                match req {
                    Ok(req) => hooks.replay(&id, req).await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            None => Err(invalid("the form names no known action")),
        };
        match done {
            Ok(()) => Ok(layout::redirect(&visit, &back)),
            Err(e) => {
                let refused = super::deliveries::Shown {
                    action: fields.opt("action").map(str::to_owned),
                    message: refusal_text(e)?,
                };
                super::deliveries::draw(
                    &visit,
                    &site,
                    &open,
                    &id,
                    &Default::default(),
                    Some(&refused),
                )
                .await
            }
        }
    })
    .await
}

fn invalid(message: &str) -> muster_webhooks::subscriptions::StoreError {
    muster_webhooks::subscriptions::StoreError::Invalid(message.to_owned())
}

/// A replay form: one delivery (`delivery_id`) or a range (`from`, `to` as the browser's
/// `datetime-local`, in UTC).
fn replay_request(f: &Fields) -> Result<ReplayRequest, muster_webhooks::subscriptions::StoreError> {
    let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, _> {
        match f.opt(name) {
            None => Ok(None),
            Some(v) => chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S"))
                .map(|t| Some(t.and_utc()))
                .map_err(|_| invalid(&format!("{name}: {v:?} is not a date and time"))),
        }
    };
    Ok(ReplayRequest {
        delivery_id: f.opt("delivery_id").map(str::to_owned),
        from: time("from")?,
        to: time("to")?,
    })
}
