//! `/audit` and `/dead-letters`: the audit log and the dead-letter log as filterable tables,
//! read through the JSON routes' own queries (`audit::list`, `read::dead_letters::list`). A
//! dead letter's bytes are whatever an upstream sent: they are shown only as escaped text
//! (non-printable bytes as `·`) and hex, never as markup.

use maud::{Markup, html};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::AdminMsg as M;
use super::partners::{refusal, utc};
use crate::audit::{self, Action, Actor};
use crate::problem::Problem;
use crate::read::dead_letters;
use crate::web::i18n::{Lang, Msg};
use crate::web::layout::{self, Nav, choice, url_encode};
use crate::web::services::admin_only;
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// The most bytes of a dead letter the page previews.
const PREVIEW: usize = 512;

/// The audit page's query as typed into its form: text, checked by the JSON route's rules.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct AuditForm {
    action: String,
    actor: String,
    from: String,
    to: String,
    before: Option<i64>,
}

impl AuditForm {
    /// The JSON route's query; a bad value is the 400 the route would answer.
    fn query(&self) -> Result<audit::Query, Problem> {
        let time = |s: &str, name: &str| -> Result<_, Problem> {
            if s.is_empty() {
                return Ok(None);
            }
            // The form's datetime-local has no zone: it is UTC, as the page says.
            let with_zone = if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                s.to_owned()
            };
            chrono::DateTime::parse_from_rfc3339(&with_zone)
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(&format!("{s}Z")))
                .map(|t| Some(t.to_utc()))
                .map_err(|e| Problem::bad_query(format!("{name}: {e}")))
        };
        Ok(audit::Query {
            action: match self.action.as_str() {
                "" => None,
                a => Some(a.parse().map_err(Problem::bad_query)?),
            },
            actor: Some(self.actor.trim().to_owned()).filter(|a| !a.is_empty()),
            from: time(&self.from, "from")?,
            to: time(&self.to, "to")?,
            before: self.before,
            limit: Some(100),
        })
    }

    fn link_before(&self, before: i64) -> String {
        format!(
            "{}?action={}&actor={}&from={}&to={}&before={before}",
            paths::to(paths::AUDIT),
            url_encode(&self.action),
            url_encode(&self.actor),
            url_encode(&self.from),
            url_encode(&self.to),
        )
    }
}

/// `GET /audit`.
pub async fn audit_page(form: AuditForm, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let lang = visit.lang;
        let (page, refused) = match form.query() {
            Ok(q) => match audit::list(&open.db, &q).await {
                Ok(p) => (Some(p), None),
                Err(p) if p.status() == StatusCode::BAD_REQUEST => (None, Some(p)),
                Err(p) => return Err(p),
            },
            Err(p) => (None, Some(p)),
        };
        let actions = Action::ALL.iter().map(|a| (a.as_str(), a.as_str()));
        let main = html! {
            h1 { (lang.t(Msg::AuditLog)) }
            p { (lang.t(M::AuditIntro)) }
            form.filters method="get" action=(paths::to(paths::AUDIT)) {
                (choice("action", lang.t(M::Action), lang.t(M::AnyAction), actions, Some(form.action.as_str())))
                div.field {
                    label for="actor" { (lang.t(M::ActorFilter)) }
                    input #actor name="actor" value=(form.actor);
                }
                div.field {
                    label for="from" { (lang.t(M::From)) }
                    input #from type="datetime-local" name="from" value=(form.from);
                }
                div.field {
                    label for="to" { (lang.t(M::To)) }
                    input #to type="datetime-local" name="to" value=(form.to);
                }
                button type="submit" { (lang.t(M::Filter)) }
            }
            (refusal(refused.as_ref()))
            @if let Some(page) = &page {
                (audit_table(lang, &page.entries))
                @if let Some(before) = page.next_before {
                    p { a href=(form.link_before(before)) { (lang.t(M::Older)) } }
                }
            }
        };
        Ok(layout::nav_page(&visit, Nav::Audit, main))
    })
    .await
}

fn audit_table(lang: Lang, entries: &[audit::Entry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { (lang.t(M::NoEntries)) }
        } @else {
            div.scroll { table.audit {
                caption.sr-only { (lang.t(Msg::AuditLog)) }
                thead { tr {
                    th scope="col" { (lang.t(M::When)) }
                    th scope="col" { (lang.t(M::Actor)) }
                    th scope="col" { (lang.t(M::Action)) }
                    th scope="col" { (lang.t(M::Subject)) }
                    th scope="col" { (lang.t(M::Details)) }
                } }
                tbody { @for e in entries { tr {
                    td { time datetime=(e.at.to_rfc3339()) { (utc(e.at)) } }
                    td { @match &e.actor {
                        Actor::Admin => (lang.t(M::Admin)),
                        Actor::Partner { partner_id, key_prefix } => {
                            a href=(paths::item(paths::PARTNERS, partner_id)) { (partner_id) }
                            " " code { (key_prefix) }
                        }
                    } }
                    td { code { (e.action.as_str()) } }
                    td { code { (e.subject) } }
                    td { code { (e.details) } }
                } } }
            } }
        }
    }
}

/// The dead-letter page's query as typed into its form.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct DeadLetterForm {
    stage: String,
    event: String,
    before: Option<i64>,
}

/// `GET /dead-letters`.
pub async fn dead_letters_page(form: DeadLetterForm, visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        admin_only(&open.session.viewer)?;
        let lang = visit.lang;
        let q = dead_letters::Query {
            stage: Some(form.stage.clone()).filter(|s| !s.is_empty()),
            event_id: Some(form.event.trim().to_owned()).filter(|s| !s.is_empty()),
            before: form.before,
            limit: Some(50),
        };
        let page = dead_letters::list(&open.db, &q).await?;
        let stages = dead_letters::stages(&open.db).await?;
        let options = stages.iter().map(|s| (s.as_str(), s.as_str()));
        let main = html! {
            h1 { (lang.t(Msg::DeadLetters)) }
            p { (lang.t(M::DeadLettersIntro)) }
            form.filters method="get" action=(paths::to(paths::DEAD_LETTERS)) {
                (choice("stage", lang.t(M::Stage), lang.t(M::AnyStage), options, Some(form.stage.as_str())))
                div.field {
                    label for="event" { (lang.t(M::EventId)) }
                    input #event name="event" value=(form.event);
                }
                button type="submit" { (lang.t(M::Filter)) }
            }
            @if page.dead_letters.is_empty() {
                p.empty { (lang.t(M::NoDeadLetters)) }
            }
            ol.dead-letters {
                @for d in &page.dead_letters { li { (letter(lang, d)) } }
            }
            @if let Some(before) = page.next_before {
                p { a href=(format!("{}?stage={}&event={}&before={before}", paths::to(paths::DEAD_LETTERS), url_encode(&form.stage), url_encode(&form.event))) { (lang.t(M::Older)) } }
            }
        };
        Ok(layout::nav_page(&visit, Nav::DeadLetters, main))
    })
    .await
}

fn letter(lang: Lang, d: &dead_letters::DeadLetter) -> Markup {
    let shown = &d.bytes[..d.bytes.len().min(PREVIEW)];
    html! {
        article.dead-letter {
            h2 {
                code { (d.stage) } " · "
                (d.event_id.as_deref().unwrap_or("—")) " · "
                time datetime=(d.failed_at.to_rfc3339()) { (utc(d.failed_at)) }
            }
            dl.facts {
                dt { (lang.t(Msg::Reason)) } dd.reason { (d.reason) }
                dt { (lang.t(M::Source)) }
                dd { code { (d.source_topic) " [" (d.source_partition) "] @ " (d.source_offset) } }
                dt { (lang.t(M::Bytes)) }
                dd {
                    (lang.int(d.payload_length as i64)) " " (lang.t(M::Length))
                    @if d.bytes.len() > PREVIEW { " (" (lang.t(M::Truncated)) ")" }
                }
            }
            details open {
                summary { (lang.t(M::Printable)) }
                pre.bytes { (printable(shown)) }
            }
            details {
                summary { (lang.t(M::Hex)) }
                pre.bytes { (hex(shown)) }
            }
        }
    }
}

/// The bytes as text: printable ASCII and whitespace kept, every other byte `·` (maud escapes
/// what is kept).
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\n' | b'\t' | 0x20..=0x7e => b as char,
            _ => '·',
        })
        .collect()
}

/// The bytes as hex, 16 a line with their offset.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, line)| {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:08x}  {}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_as_escaped_text_and_hex() {
        let raw = b"<script>\0\xff\n";
        assert_eq!(printable(raw), "<script>··\n");
        let html = html! { pre { (printable(raw)) } }.into_string();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert_eq!(hex(b"AB"), "00000000  41 42");
        assert_eq!(hex(&[0u8; 17]).lines().count(), 2);
    }

    #[test]
    fn the_audit_form_is_read_as_the_route_reads_its_query() {
        let form = AuditForm {
            action: "partner-grant".into(),
            from: "2026-12-07T10:00".into(),
            ..Default::default()
        };
        let q = form.query().unwrap();
        assert_eq!(q.action, Some(Action::PartnerGrant));
        assert_eq!(q.from.unwrap().to_rfc3339(), "2026-12-07T10:00:00+00:00");
        let bad = AuditForm {
            action: "dance".into(),
            ..Default::default()
        };
        assert_eq!(bad.query().unwrap_err().status(), StatusCode::BAD_REQUEST);
    }
}
