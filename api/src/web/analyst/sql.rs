//! `GET /sql`: the query box and the tables a query may name; `POST /sql` runs the query and
//! shows its answer as a table (or the API's refusal next to the box); `POST /sql/download`
//! answers the same query as a CSV or Parquet file. Every query goes through
//! [`Sql::run`](crate::resources::sql::Sql::run), as `POST /api/premium/sql` does: the same
//! engine, scoping, limits and per-key slots.

use maud::{Markup, html};
use warp::http::StatusCode;
use warp::reply::Response;

use super::analyst;
use super::texts::A;
use crate::problem::Problem;
use crate::resources::sql::{Download, Ran, Sql, Table, columns};
use crate::web::form::{Fields, csrf_refused};
use crate::web::layout::{self, Nav, csrf_field};
use crate::web::session::Visit;
use crate::web::{Open, Site, paths};

/// Rows the page shows at most (a download gets the API's limit).
const PAGE_ROWS: usize = 1_000;

/// What the page shows below the box: nothing yet, an answer, or a refusal.
enum Outcome {
    Blank,
    Answer(Ran),
    Refused(Problem),
}

/// `GET /sql`.
pub async fn page(visit: Visit, site: Site) -> Response {
    site.page(&visit, async |open: Open| {
        draw(&visit, &site, &open, None, Outcome::Blank).await
    })
    .await
}

/// `POST /sql`: runs the query of the form.
pub async fn run(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |open: Open| {
        analyst(&open.session.viewer)?;
        let query = fields.get("query");
        let ran = site
            .sql
            .run(
                &site.state.pool,
                &open.session.viewer,
                query,
                Some(PAGE_ROWS),
            )
            .await;
        draw(&visit, &site, &open, Some(query), refused_or(ran)?).await
    })
    .await
}

/// `POST /sql/download`: the form's query as a file in its `format`; a refusal shows the page
/// with the API's message next to the box.
pub async fn download(fields: Fields, visit: Visit, site: Site) -> Response {
    if let Some(r) = csrf_refused(&visit, &fields) {
        return r;
    }
    site.page(&visit, async |open: Open| {
        analyst(&open.session.viewer)?;
        let query = fields.get("query");
        let format: Download = fields.get("format").parse().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-format",
                "A download is csv or parquet",
            )
        })?;
        let ran = site
            .sql
            .run(&site.state.pool, &open.session.viewer, query, None)
            .await;
        match refused_or(ran)? {
            Outcome::Answer(ran) => {
                let mut res = format.file(&ran)?;
                layout::page_headers(&visit, &mut res);
                Ok(res)
            }
            outcome => draw(&visit, &site, &open, Some(query), outcome).await,
        }
    })
    .await
}

/// A query's refusal (bad SQL, a table out of scope, a limit) is shown next to the box; the
/// server's own failures are an error page.
fn refused_or(ran: Result<Ran, Problem>) -> Result<Outcome, Problem> {
    match ran {
        Ok(ran) => Ok(Outcome::Answer(ran)),
        Err(p) if p.status().is_server_error() => Err(p),
        Err(p) => Ok(Outcome::Refused(p)),
    }
}

async fn draw(
    visit: &Visit,
    site: &Site,
    open: &Open,
    query: Option<&str>,
    outcome: Outcome,
) -> Result<Response, Problem> {
    analyst(&open.session.viewer)?;
    let lang = visit.lang;
    let tables = Sql::tables(&site.state.pool, &open.session.viewer).await?;
    let example = tables
        .first()
        .map(|t| format!("SELECT * FROM {} LIMIT 20", t.name))
        .unwrap_or_default();
    let query = query.unwrap_or(&example);
    let (result, refused) = match outcome {
        Outcome::Blank => (None, None),
        Outcome::Answer(ran) => match answer(visit, &ran) {
            Ok(m) => (Some(m), None),
            Err(p) if p.status().is_server_error() => return Err(p),
            Err(p) => (None, Some(p)),
        },
        Outcome::Refused(p) => (None, Some(p)),
    };
    let status = refused.as_ref().map_or(StatusCode::OK, Problem::status);
    let main = html! {
        h1 { (lang.t(crate::web::i18n::Msg::Sql)) }
        p { (lang.t(A::SqlIntro)) }
        div.analyst {
            div.work {
                (query_form(visit, query, refused.as_ref()))
                @if let Some(r) = result { (r) }
            }
            (table_list(visit, &tables))
        }
    };
    let mut res = layout::nav_page(visit, Nav::Sql, main);
    *res.status_mut() = status;
    Ok(res)
}

fn query_form(visit: &Visit, query: &str, refused: Option<&Problem>) -> Markup {
    let lang = visit.lang;
    html! {
        form.admin-form.sql-form method="post" action=(paths::to(paths::SQL)) {
            (csrf_field(visit))
            div.field {
                label for="query" { (lang.t(A::Query)) }
                textarea #query name="query" rows="7" spellcheck="false" autocapitalize="off"
                    aria-invalid=[refused.map(|_| "true")]
                    aria-describedby=[refused.map(|_| "query-error")] { (query) }
                @if let Some(p) = refused {
                    p.error.field-error id="query-error" role="alert" {
                        (p.title)
                        @if let Some(d) = &p.detail { ": " (d) }
                    }
                }
            }
            div.actions {
                button type="submit" { (lang.t(A::Run)) }
                @for (kind, label) in [(Download::Csv, A::DownloadCsv), (Download::Parquet, A::DownloadParquet)] {
                    button.secondary type="submit" name="format" value=(kind.as_str())
                        formaction=(format!("/{}/{}", paths::SQL, paths::DOWNLOAD)) {
                        (lang.t(label))
                    }
                }
            }
        }
    }
}

/// The answer as a table, its values as the JSON API gives them (within the same byte cap).
fn answer(visit: &Visit, ran: &Ran) -> Result<Markup, Problem> {
    let lang = visit.lang;
    let names = columns(&ran.answer);
    let rows = muster_analytics::json_rows_within(&ran.answer.batches, ran.limits.max_bytes)?;
    let cell = |row: &serde_json::Value, name: &str| match row.get(name) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    Ok(html! {
        section.sql-result aria-labelledby="result" {
            h2 #result { (lang.t(A::Answer)) }
            p.shown id="row-count" { (ran.answer.rows) " " (lang.t(if ran.answer.rows == 1 { A::OneRow } else { A::Rows })) }
            @if ran.answer.truncated {
                p.note id="truncated" role="status" { (lang.t(A::Truncated)) }
            }
            @if rows.is_empty() {
                p.empty { (lang.t(A::NoRows)) }
            } @else {
                div.scroll tabindex="0" role="region" aria-labelledby="result" {
                    table.sql-rows {
                        thead { tr { @for n in &names { th scope="col" { (n) } } } }
                        tbody {
                            @for row in &rows {
                                tr { @for n in &names { td { (cell(row, n)) } } }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn table_list(visit: &Visit, tables: &[Table]) -> Markup {
    let lang = visit.lang;
    html! {
        aside.sql-tables aria-labelledby="tables" {
            h2 #tables { (lang.t(A::Tables)) }
            p.note { (lang.t(A::TablesIntro)) }
            @for t in tables {
                details.sql-table {
                    summary { code { (t.name) } }
                    table {
                        thead { tr {
                            th scope="col" { (lang.t(A::Column)) }
                            th scope="col" { (lang.t(A::Type)) }
                        } }
                        tbody {
                            @for (name, kind) in &t.columns {
                                tr { td { code { (name) } } td { (kind) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
