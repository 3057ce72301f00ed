//! The pages' live streams, `GET /live/overview`, `/live/alerts`, `/live/services` and
//! `/live/event` (Server-Sent Events, with the page's own query): the process's change feed
//! says which events changed, and a stream re-renders what its page shows of them, sending
//! HTML fragments that htmx swaps in place (`hx-swap-oob`). Changes arriving together are drawn once. The session is checked
//! again before each update: signed out, revoked or expired, the stream says `bye` and ends.
//! A page carries the feed's head when it was drawn (`since`), so a change between drawing
//! and subscribing is not lost: the stream then redraws at once.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::sse::Event as Sse;

use super::i18n::Lang;
use super::paths;
use super::session::{Session, Signed, Visit};
use super::{Site, alerts, board, event, overview, portal, services};
use crate::auth::Viewer;
use crate::feed::{Change, Since};
use crate::problem::Problem;
use crate::read::Client;
use crate::read::Reader;
use crate::route::{Route, any, with};

/// How long a stream gathers changes after the first before it draws them.
const GATHER: Duration = Duration::from_millis(200);

/// What changed since the last update: some events, or everything (a lagging receiver, a
/// resumed stream).
#[derive(Debug, Default)]
pub struct Changed {
    pub all: bool,
    pub ids: HashSet<String>,
    pub last: Option<i64>,
}

impl Changed {
    fn add(&mut self, c: &Change) {
        self.ids.insert(c.event_id.clone());
        self.last = Some(self.last.map_or(c.id, |l| l.max(c.id)));
    }

    fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty()
    }
}

/// A page that updates itself over a stream.
trait LivePage: Send + 'static {
    /// When what the page shows changes with no change in the feed (numbers turning stale,
    /// an event ending by its dates): the stream redraws then.
    fn deadline(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// The fragments to send for what changed, or `None` when the page shows none of it.
    fn update(
        &mut self,
        at: Redraw<'_>,
    ) -> impl Future<Output = Result<Option<String>, Problem>> + Send;
}

/// What a live page redraws with: a database client, the viewer as the session says now, and
/// what changed.
pub struct Redraw<'a> {
    pub db: &'a Client,
    pub viewer: &'a Viewer,
    pub changed: &'a Changed,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Resume {
    /// The feed's head when the page was drawn.
    since: Option<i64>,
}

pub fn routes(site: &Site) -> Route {
    any([
        live(
            paths::OVERVIEW_STREAM,
            site,
            |q: &board::Query, site, lang, session| {
                let viewer = &session.viewer;
                Ok(Overview {
                    lang,
                    filters: q.filters(),
                    shown: None,
                    reader: site.reader.clone(),
                    viewer_ids: viewer.event_ids().map(<[String]>::to_vec),
                    // Before its first redraw the stream does not know the rows: by then any number
                    // fresh when the page was drawn may have turned stale.
                    deadline: Some(Utc::now() + site.reader.stale_after()),
                })
            },
        ),
        live(paths::ALERTS, site, |q: &alerts::Query, site, lang, _| {
            Ok(Alerts {
                lang,
                filters: q.filters(),
                reader: site.reader.clone(),
                last: None,
            })
        }),
        live(
            paths::EVENT_STREAM,
            site,
            |q: &event::Query, site, lang, session| {
                session.viewer.check(&q.event)?;
                Ok(EventLive {
                    lang,
                    event_id: q.event.clone(),
                    reader: site.reader.clone(),
                    last: None,
                    deadline: Some(Utc::now() + site.reader.stale_after()),
                })
            },
        ),
        live(paths::SERVICES, site, |_: &Resume, site, lang, session| {
            services::admin_only(&session.viewer)?;
            Ok(Services {
                lang,
                site: site.clone(),
                last: None,
            })
        }),
        live(
            paths::DELIVERIES_STREAM,
            site,
            |q: &portal::LogQuery, site, lang, session| {
                let endpoint = q.endpoint.clone().ok_or_else(|| {
                    Problem::bad_query("endpoint: the webhook whose log to stream")
                })?;
                portal::partner(&session.viewer)?;
                Ok(portal::DeliveriesLive {
                    lang,
                    site: site.clone(),
                    endpoint,
                    query: q.clone(),
                    csrf: session.csrf.clone(),
                    last: None,
                })
            },
        ),
    ])
}

/// How a stream's page is built from its query, for a viewer; a problem refuses the stream.
type Build<Q, P> = fn(&Q, &Site, Lang, &Session) -> Result<P, Problem>;

/// `GET /live/{name}` with the page's own query `Q`: the stream of the page `page` builds.
fn live<Q, P>(name: &'static str, site: &Site, page: Build<Q, P>) -> Route
where
    Q: serde::de::DeserializeOwned + Send + 'static,
    P: LivePage,
{
    warp::path(paths::LIVE)
        .and(warp::path(name))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::<Q>())
        .and(warp::query::<Resume>())
        .and(site.sessions.visit())
        .and(with(site.clone()))
        .then(
            move |q: Q, resume: Resume, visit: Visit, site: Site| async move {
                let drawn = site.clone();
                stream(site, visit, resume, move |lang, session| {
                    page(&q, &drawn, lang, session)
                })
                .await
            },
        )
        .boxed()
}

/// The stream of `page` for this visit. Signed out, it answers 204, which tells the browser's
/// `EventSource` to stop reconnecting.
async fn stream<P: LivePage>(
    site: Site,
    visit: Visit,
    resume: Resume,
    page: impl FnOnce(Lang, &Session) -> Result<P, Problem>,
) -> Response {
    use warp::Reply;
    let session = match &visit.signed {
        Signed::In(s) => s.clone(),
        _ => return StatusCode::NO_CONTENT.into_response(),
    };
    let rx = site.state.feed.subscribe();
    // Anything committed after the page was drawn and before this subscription is redrawn.
    let mut first = Changed::default();
    if let Some(since) = resume.since {
        match site.state.feed.since(since).await {
            Ok(Since::Changes { changes, .. }) if changes.is_empty() => {}
            Ok(_) | Err(_) => first.all = true,
        }
    }
    let keep_alive = site.keep_alive;
    let live = Live {
        page: match page(visit.lang, &session) {
            Ok(p) => p,
            Err(p) => return p.into_response(),
        },
        session,
        site,
        rx,
        first: Some(first),
    };
    let events = futures::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok::<_, Infallible>(event), live))
    });
    // warp wants the stream Sync; its futures hold database clients, which are not.
    let events = sync_wrapper::SyncStream::new(events);
    let keep_alive = warp::sse::keep_alive().interval(keep_alive);
    let mut res = warp::sse::reply(keep_alive.stream(events)).into_response();
    res.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-store"),
    );
    res
}

struct Live<P> {
    page: P,
    session: Session,
    site: Site,
    rx: broadcast::Receiver<Arc<Change>>,
    /// What to draw before waiting for the feed (a resumed page's gap).
    first: Option<Changed>,
}

impl<P: LivePage> Live<P> {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            let changed = match self.first.take().filter(|c| !c.is_empty()) {
                Some(c) => c,
                None => self.gather(self.page.deadline()).await?,
            };
            let viewer = match self.site.sessions.recheck(&self.session).await {
                Signed::In(s) => s.viewer,
                Signed::Out => return Some(Sse::default().event("bye").data("signed out")),
                Signed::Failed(p) => {
                    tracing::warn!(problem = %p.title, "a live page could not check its session");
                    continue;
                }
            };
            let db = match self.site.db().await {
                Ok(db) => db,
                Err(p) => {
                    tracing::warn!(problem = %p.title, "a live page could not read");
                    continue;
                }
            };
            let at = Redraw {
                db: &db,
                viewer: &viewer,
                changed: &changed,
            };
            match self.page.update(at).await {
                Ok(Some(html)) => {
                    let mut event = Sse::default().event("update").data(html);
                    if let Some(id) = changed.last {
                        event = event.id(id.to_string());
                    }
                    return Some(event);
                }
                Ok(None) => {}
                Err(p) => tracing::warn!(problem = %p.title, "a live page could not redraw"),
            }
        }
    }

    /// Waits for changes (or the page's `deadline`), then gathers those that follow within
    /// [`GATHER`]. `None` when the feed has stopped (the process is stopping).
    async fn gather(&mut self, deadline: Option<DateTime<Utc>>) -> Option<Changed> {
        let mut changed = Changed::default();
        let wait = deadline.map_or(Duration::from_secs(24 * 3600), |d| {
            (d - Utc::now()).to_std().unwrap_or_default()
        });
        tokio::select! {
            received = self.rx.recv() => match received {
                Ok(c) => changed.add(&c),
                Err(RecvError::Lagged(_)) => changed.all = true,
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(wait) => changed.all = true,
        }
        tokio::time::sleep(GATHER).await;
        loop {
            match self.rx.try_recv() {
                Ok(c) => changed.add(&c),
                Err(broadcast::error::TryRecvError::Lagged(_)) => changed.all = true,
                Err(_) => break,
            }
        }
        Some(changed)
    }
}

/// The overview's stream: cards, the count, and the rows of the events that changed (added,
/// replaced or removed as the page's filters now say).
struct Overview {
    lang: Lang,
    filters: board::Filters,
    /// The events on the page, once known.
    shown: Option<HashSet<String>>,
    reader: Reader,
    /// The events the viewer saw when the stream opened (`None`: all).
    viewer_ids: Option<Vec<String>>,
    /// When the next shown event turns stale or ends.
    deadline: Option<DateTime<Utc>>,
}

impl LivePage for Overview {
    fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline
    }

    async fn update(&mut self, at: Redraw<'_>) -> Result<Option<String>, Problem> {
        let (db, viewer, changed) = (at.db, at.viewer, at.changed);
        let grants_moved = viewer.event_ids().map(<[String]>::to_vec) != self.viewer_ids;
        let all = changed.all || self.shown.is_none() || grants_moved;
        let mine: Vec<String> = changed
            .ids
            .iter()
            .filter(|id| viewer.check(id).is_ok())
            .cloned()
            .collect();
        if !all && mine.is_empty() {
            return Ok(None);
        }
        let spark = (!all).then_some(mine.as_slice());
        let board = board::load(db, viewer, &self.filters, &self.reader, spark).await?;
        let lang = self.lang;
        let now = Utc::now();
        let mut html = String::new();
        html.push_str(&overview::cards(lang, &board, true).into_string());
        html.push_str(&overview::shown(lang, &board, true).into_string());
        html.push_str(&overview::empty(lang, &board, true).into_string());
        let now_shown: HashSet<String> = board
            .rows
            .iter()
            .map(|r| r.event.event_id.clone())
            .collect();
        if all {
            html.push_str(&overview::rows(lang, now, &board, true).into_string());
        } else {
            let shown = self.shown.get_or_insert_with(HashSet::new);
            for r in board
                .rows
                .iter()
                .filter(|r| mine.contains(&r.event.event_id))
            {
                let row = overview::row(lang, now, r, shown.contains(&r.event.event_id));
                if shown.contains(&r.event.event_id) {
                    html.push_str(&format!("<template>{}</template>", row.into_string()));
                } else {
                    html.push_str(&format!(
                        r##"<template><tbody hx-swap-oob="beforeend:#rows">{}</tbody></template>"##,
                        row.into_string()
                    ));
                }
            }
            for gone in mine
                .iter()
                .filter(|id| shown.contains(*id) && !now_shown.contains(*id))
            {
                html.push_str(&format!(
                    r#"<template><tr id="{}" hx-swap-oob="delete"></tr></template>"#,
                    overview::row_id(gone)
                ));
            }
        }
        self.shown = Some(now_shown);
        self.deadline = board::next_change(&board, self.reader.stale_after());
        self.viewer_ids = viewer.event_ids().map(<[String]>::to_vec);
        Ok(Some(html))
    }
}

/// The alerts' stream: the table again when what it shows has changed.
struct Alerts {
    lang: Lang,
    filters: alerts::Filters,
    reader: Reader,
    /// The last table sent, so an update that changes nothing on the page is not sent.
    last: Option<String>,
}

impl LivePage for Alerts {
    async fn update(&mut self, at: Redraw<'_>) -> Result<Option<String>, Problem> {
        let (db, viewer, changed) = (at.db, at.viewer, at.changed);
        let relevant = changed.all
            || changed.ids.iter().any(|id| {
                viewer.check(id).is_ok() && self.filters.event.as_ref().is_none_or(|e| e == id)
            });
        if !relevant {
            return Ok(None);
        }
        let list = alerts::load(db, viewer, &self.filters, &self.reader).await?;
        let html = alerts::table(self.lang, Utc::now(), &list, true).into_string();
        Ok(unless_sent(&mut self.last, html))
    }
}

/// An event page's stream: its headline, gate table and alerts again when the feed reports
/// the event (or its numbers turn stale) and they read differently.
struct EventLive {
    lang: Lang,
    event_id: String,
    reader: Reader,
    /// The last fragments sent.
    last: Option<String>,
    /// When the numbers shown turn stale.
    deadline: Option<DateTime<Utc>>,
}

impl LivePage for EventLive {
    fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline
    }

    async fn update(&mut self, at: Redraw<'_>) -> Result<Option<String>, Problem> {
        let (db, viewer, changed) = (at.db, at.viewer, at.changed);
        // A grant withdrawn since the page opened: nothing more of the event.
        if viewer.check(&self.event_id).is_err()
            || !(changed.all || changed.ids.contains(&self.event_id))
        {
            return Ok(None);
        }
        let now = Utc::now();
        let core = event::core(db, viewer, &self.event_id, &self.reader, now).await?;
        self.deadline = core
            .event
            .realtime
            .as_ref()
            .map(|r| r.fetched_at + self.reader.stale_after())
            .filter(|d| *d > now);
        let html = event::live_fragments(self.lang, now, &core);
        Ok(unless_sent(&mut self.last, html))
    }
}

/// The services' stream: the table again when it reads differently. Lag and last sync move
/// with every poll and no feed change, so it also redraws every [`SERVICES_EVERY`].
struct Services {
    lang: Lang,
    site: Site,
    /// The last table sent.
    last: Option<String>,
}

const SERVICES_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

impl LivePage for Services {
    fn deadline(&self) -> Option<DateTime<Utc>> {
        Some(Utc::now() + SERVICES_EVERY)
    }

    async fn update(&mut self, at: Redraw<'_>) -> Result<Option<String>, Problem> {
        services::admin_only(at.viewer)?;
        let list = services::load(&self.site, None).await?;
        let html = services::table(self.lang, Utc::now(), &list, true).into_string();
        Ok(unless_sent(&mut self.last, html))
    }
}

/// A delivery log: attempts are not in the change feed, so it looks every
/// [`portal::LOG_EVERY`] and sends the log when it reads differently.
impl LivePage for portal::DeliveriesLive {
    fn deadline(&self) -> Option<DateTime<Utc>> {
        Some(Utc::now() + portal::LOG_EVERY)
    }

    async fn update(&mut self, at: Redraw<'_>) -> Result<Option<String>, Problem> {
        self.redraw(at.viewer).await
    }
}

/// `html` unless it is what was sent last (then nothing is sent); remembered as the last.
pub(crate) fn unless_sent(last: &mut Option<String>, html: String) -> Option<String> {
    if last.as_ref() == Some(&html) {
        return None;
    }
    *last = Some(html.clone());
    Some(html)
}
