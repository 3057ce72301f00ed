//! The analyst pages in a real browser against a real `muster api`: a premium partner's SQL
//! page runs its query over the same engine and scoping as `POST /api/premium/sql` (only its
//! own events come back), shows a bad query's refusal next to the box, and downloads the
//! answer as CSV and Parquet files; the JSON API's download routes answer the same file; a
//! partner of the plain tier gets a 403. Screenshots at 1280 and 390 px.

use crate::common;

use common::api::{Auth, start_api};
use common::browser::{Browser, DESKTOP, PHONE};
use common::{Run, Services, db, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// `events` in the catalogue, each live with 420 attending.
async fn seed(s: &Services, events: &[&str]) {
    let client = db::connect(&s.database).await;
    for e in events {
        db::insert_catalogue(&client, e).await;
        db::insert_realtime(&client, e, 420).await;
    }
}

/// Puts `query` in the box and runs it, waiting for the page it answers.
async fn run_query(b: &Browser, query: &str) {
    b.js("document.body.dataset.before = '1';").await;
    b.client
        .execute(
            "const q = document.querySelector('#query'); q.value = arguments[0]; \
             q.form.querySelector('button:not([name])').click();",
            vec![json!(query)],
        )
        .await
        .unwrap();
    b.wait_until(
        "the query's page",
        "return document.readyState === 'complete' && !document.body.dataset.before \
         && !!document.querySelector('#query');",
    )
    .await;
}

/// The form's query downloaded as `format` with `fetch` (the session's cookie and the form's
/// CSRF token): its status, content type, disposition, and its text (for Parquet, its first
/// four bytes).
async fn download(b: &Browser, query: &str, format: &str) -> Value {
    b.client
        .execute_async(
            "const [query, format, done] = arguments;
             const form = new FormData(document.querySelector('form.sql-form'));
             form.set('query', query); form.set('format', format);
             fetch('/sql/download', { method: 'POST', body: new URLSearchParams(form) })
               .then(async r => {
                 const bytes = new Uint8Array(await r.arrayBuffer());
                 const text = new TextDecoder().decode(format === 'csv' ? bytes : bytes.slice(0, 4));
                 done([r.status, r.headers.get('content-type'), r.headers.get('content-disposition'), text]);
               });",
            vec![json!(query), json!(format)],
        )
        .await
        .unwrap()
}

/// The answer's cells, row by row.
async fn cells(b: &Browser) -> Value {
    b.js(
        "return [...document.querySelectorAll('table.sql-rows tbody tr')]
            .map(tr => [...tr.cells].map(td => td.textContent));",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_premium_partner_queries_its_own_events_and_downloads_the_answer() {
    let (s, run, dir, _) = Run::begin().parts();
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let (mine, other) = (format!("qa{run}"), format!("qb{run}"));
    seed(&s, &[&mine, &other]).await;
    let key = api.partner_key("premium", &[&mine]).await;
    let plain = api.partner_key("partner", &[&mine]).await;
    let query = "SELECT event_id, current_attendees FROM event_realtime ORDER BY event_id";

    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&key).await;
    b.click("nav a[href='/sql']").await;
    b.wait_until("the SQL page", "return location.pathname === '/sql';")
        .await;
    assert_eq!(b.text("h1").await, "SQL");
    // The tables a query may name, each with its columns.
    let columns = b
        .js("return [...document.querySelectorAll('.sql-table')]
                .filter(d => d.querySelector('summary').textContent === 'event_realtime')
                .map(d => [...d.querySelectorAll('tbody td:first-child')].map(td => td.textContent))[0];")
        .await;
    assert!(
        columns
            .as_array()
            .is_some_and(|c| c.contains(&json!("current_attendees"))),
        "{columns}"
    );

    // Only the partner's own event, though the table holds both.
    run_query(&b, query).await;
    assert_eq!(cells(&b).await, json!([[mine, "420"]]));
    assert!(b.text("#row-count").await.starts_with("1 "));
    assert_eq!(
        b.js("return !document.querySelector('#truncated');").await,
        true
    );
    let (status, api_answer) = api
        .call(
            Method::POST,
            "/api/premium/sql",
            Auth::Key(&key),
            Some(json!({ "query": query })),
        )
        .await;
    assert_eq!(status, 200, "{api_answer}");
    assert_eq!(
        api_answer["rows"],
        json!([{"event_id": mine, "current_attendees": 420}])
    );
    for (size, width) in [(PHONE, 390), (DESKTOP, 1280)] {
        b.resize(size).await;
        run_query(&b, query).await;
        b.screenshot(&format!("analyst-sql-{width}")).await;
    }

    // The answer as files: CSV (a header row, then the rows) and Parquet.
    let csv = download(&b, query, "csv").await;
    assert_eq!(
        csv,
        json!([
            200,
            "text/csv; charset=utf-8",
            "attachment; filename=\"muster-query.csv\"",
            format!("event_id,current_attendees\n{mine},420\n")
        ])
    );
    let parquet = download(&b, query, "parquet").await;
    assert_eq!(
        parquet,
        json!([
            200,
            "application/vnd.apache.parquet",
            "attachment; filename=\"muster-query.parquet\"",
            "PAR1"
        ])
    );
    // The JSON API's download answers the same file.
    let res = api
        .request(Method::POST, "/api/premium/sql/csv", Auth::Key(&key))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-muster-truncated"], "false");
    assert_eq!(res.text().await.unwrap(), csv[3].as_str().unwrap());

    // A bad query: the API's message next to the box, the query kept.
    let bad = "SELECT no_such_column FROM event_realtime";
    run_query(&b, bad).await;
    let error = b.text("#query-error").await;
    assert!(
        error.starts_with("The query is invalid") && error.contains("no_such_column"),
        "{error}"
    );
    assert_eq!(
        b.js("return document.querySelector('#query').value;").await,
        bad
    );
    assert_eq!(
        b.js("return document.querySelector('#query').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    assert_eq!(
        b.js("return !document.querySelector('.sql-result');").await,
        true
    );
    b.screenshot("analyst-sql-refused-1280").await;
    // The browser logs the 400 the page was answered with, and nothing else.
    let refused = "/sql - Failed to load resource: the server responded with a status of 400";
    let logged = wait_for("the 400 in the console", Duration::from_secs(10), || {
        let b = &b;
        async move {
            let errors = b.console_errors().await;
            errors.iter().any(|e| e.contains(refused)).then_some(errors)
        }
    })
    .await;
    assert!(logged.iter().all(|e| e.contains(refused)), "{logged:#?}");
    b.finish().await;

    // A partner of the plain tier: no SQL entry, and the page is refused.
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&plain).await;
    assert_eq!(
        b.js("return !document.querySelector(\"nav a[href='/sql']\");")
            .await,
        true
    );
    let session = b.client.get_named_cookie("muster_session").await.unwrap();
    let res = reqwest::Client::new()
        .get(format!("{}/sql", api.base))
        .header("cookie", format!("muster_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    b.finish().await;
}

/// Insight rows as `muster insights` writes them: festival cells (one of too few events to be
/// shown) and a concert cell; forecasts and ROI of `mine` and `other`.
async fn seed_insights(s: &Services, mine: &str, other: &str) {
    let db = db::connect(&s.database).await;
    for (event_type, day, hour, rate, events, change) in [
        ("festival", 1, 10, 0.85, 4_i64, Some(0.1)),
        ("festival", 6, 20, 0.3, 5, None),
        ("festival", 2, 11, 0.5, 2, None),
        ("concert", 5, 19, 0.55, 3, Some(-0.05)),
    ] {
        db.execute(
            "INSERT INTO insight_patterns (event_type, day_of_week, hour_of_day,
                average_attendance_rate, stddev_attendance_rate, samples, events,
                previous_average_attendance_rate, previous_samples, previous_events, change)
             VALUES ($1, $2, $3, $4, 0.05, 12, $5, $4::float8 - $6::float8, 10, $5, $6)",
            &[&event_type, &day, &hour, &rate, &events, &change],
        )
        .await
        .unwrap();
    }
    for (event, mape) in [(mine, 12.5), (other, 40.0)] {
        let detail = json!({
            "eventId": event, "eventType": "festival", "phase": "upcoming", "registered": 100,
            "showUpRate": {"expected": 0.8, "low": 0.7, "high": 0.9},
            "finalAttendance": {"expected": 80.0, "low": 70.0, "high": 90.0},
            "risks": [], "similarEvents": [], "similarEventCount": 6,
            "backtest": {"events": 6, "mape": mape, "intervalCoverage": 0.83},
        });
        db.execute(
            "INSERT INTO insight_forecasts (event_id, event_type, phase, registered, show_up_rate,
                show_up_rate_low, show_up_rate_high, final_attendance, final_attendance_low,
                final_attendance_high, backtest_mape, detail)
             VALUES ($1, 'festival', 'upcoming', 100, 0.8, 0.7, 0.9, 80, 70, 90, $2, $3)",
            &[&event, &mape, &detail],
        )
        .await
        .unwrap();
        db.execute(
            "INSERT INTO insight_roi (scope, subject, event_type, currency, events, complete,
                registered, attendees, revenue, cost, profit, roi)
             VALUES ('event', $1, 'festival', 'KRW', 1, true, 100, 80, 1250, 1000, 250, 0.25)",
            &[&event],
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_premium_partner_sees_the_patterns_heatmap_and_its_forecasts_and_roi() {
    let (s, run, dir, _) = Run::begin().parts();
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let (mine, other) = (format!("fa{run}"), format!("fb{run}"));
    seed(&s, &[&mine, &other]).await;
    seed_insights(&s, &mine, &other).await;
    let key = api.partner_key("premium", &[&mine]).await;
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&key).await;

    // The heatmap: Monday is the first row, hour 10 the eleventh cell.
    b.goto("/patterns?eventType=festival").await;
    let cell = |day_row: usize, hour: usize| {
        format!(
            "#heatmap tbody tr:nth-child({day_row}) td:nth-of-type({})",
            hour + 1
        )
    };
    let monday_10 = b.find(&cell(1, 10)).await;
    assert_eq!(monday_10.text().await.unwrap(), "85%");
    assert_eq!(
        monday_10.attr("class").await.unwrap().as_deref(),
        Some("heat-4")
    );
    let title = monday_10.attr("title").await.unwrap().unwrap();
    assert!(
        title.contains("85%") && title.contains("12 event-hours") && title.contains("+10.0 pts"),
        "{title}"
    );
    assert_eq!(
        b.find(&cell(6, 20))
            .await
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("heat-1")
    );
    // A cell of too few events is left out, as the JSON route leaves it out.
    assert_eq!(
        b.find(&cell(2, 11))
            .await
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("heat-none")
    );
    let options = b
        .js("return [...document.querySelectorAll('#eventType option')].map(o => o.value);")
        .await;
    assert_eq!(options, json!(["concert", "festival"]));
    for (size, width) in [(PHONE, 390), (DESKTOP, 1280)] {
        b.resize(size).await;
        b.goto("/patterns?eventType=festival").await;
        b.screenshot(&format!("analyst-patterns-{width}")).await;
    }
    // Another type through the select.
    b.client
        .execute(
            "const s = document.querySelector('#eventType'); s.value = 'concert'; s.form.submit();",
            vec![],
        )
        .await
        .unwrap();
    b.wait_until(
        "the concert heatmap",
        "return location.search === '?eventType=concert';",
    )
    .await;
    let friday_19 = b.find(&cell(5, 19)).await;
    assert_eq!(friday_19.text().await.unwrap(), "55%");
    let title = friday_19.attr("title").await.unwrap().unwrap();
    assert!(title.contains("-5.0 pts"), "{title}");

    // Forecasts and ROI: the partner's own event only.
    b.goto("/forecasts").await;
    let rows = b
        .js("return [...document.querySelectorAll('#forecast-table tbody tr')].map(tr => tr.dataset.event);")
        .await;
    assert_eq!(rows, json!([mine]));
    assert_eq!(
        b.text("#forecast-table .final-attendance").await,
        "80 (70–90)"
    );
    assert!(b.text("#forecast-table .mape").await.starts_with("12.5%"));
    let roi = b
        .js("return [...document.querySelectorAll('#roi-events-table tbody tr')].map(tr => [tr.dataset.subject, tr.querySelector('.roi').textContent]);")
        .await;
    assert_eq!(roi, json!([[mine, "25%"]]));
    assert_eq!(
        b.js("return [...document.querySelectorAll('#roi-types-table tbody tr')].map(tr => tr.dataset.subject);")
            .await,
        json!(["festival"])
    );
    for (size, width) in [(PHONE, 390), (DESKTOP, 1280)] {
        b.resize(size).await;
        b.goto("/forecasts").await;
        b.screenshot(&format!("analyst-forecasts-{width}")).await;
    }
    b.finish().await;
}
