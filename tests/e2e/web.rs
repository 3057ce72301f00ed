//! The web pages in a real browser (headless Chromium over WebDriver) against a real
//! `muster api`: sign-in sessions that see exactly what their key sees, live updates over the
//! change feed's SSE stream with no polling, Korean with local times, sign-out, CSRF, the
//! keyboard, a clean console and the page's weight. Screenshots of each page at 1280 and 390
//! px are saved under `<target>/screenshots/`.

use crate::common;

use std::time::Duration;

use common::api::{ADMIN, Api, start_api};
use common::browser::{Browser, DESKTOP, PHONE};
use common::db::wait_until_projecting;
use common::records::{gate_down, normalized};
use common::stack::Stack;
use common::{Run, Services, Worker, db, free_port, producer, send, wait_for, worker_env};
use muster_schemas::{AlertAction, GateActivity, NormalizedMetrics};
use reqwest::Method;

/// `events` in the catalogue (type festival, capacity 1000, UTC+09:00), each live with
/// `inside` attending now.
async fn seed(s: &Services, events: &[(&str, &str, i64)]) {
    let client = db::connect(&s.database).await;
    for (id, name, inside) in events {
        client
            .execute(
                "INSERT INTO event_catalogue (event_id, service_name, name, event_type, capacity,
                    utc_offset_minutes, removed, version_at)
                 VALUES ($1, 'svc', $2, 'festival', 1000, 540, false, now())",
                &[id, name],
            )
            .await
            .unwrap();
        db::insert_realtime(&client, id, *inside).await;
        // The last three hours, for the sparklines.
        client
            .execute(
                "INSERT INTO event_series_minute (event_id, bucket, samples, attendees_sum,
                    attendees_max, attendees_min, registered_max, rate_sum, last_at,
                    last_attendees)
                 SELECT $1, date_trunc('minute', now()) - make_interval(mins => g * 15), 1, v, v, v,
                    1000, v / 1000.0, now(), v
                 FROM generate_series(0, 11) g,
                      LATERAL (SELECT ($2::bigint * (12 - g) / 12 + (g % 3) * 7)::bigint AS v) x",
                &[id, inside],
            )
            .await
            .unwrap();
    }
}

/// A `muster api`, one seeded event (id `{tag}{run}`) and a browser signed in as the admin.
async fn admin_with_event(tag: &str, name: &str, inside: i64) -> (Worker, Api, Browser, String) {
    let (s, run, dir, _) = Run::begin().parts();
    let e = format!("{tag}{run}");
    // Seeded before the API starts, which loads its in-memory view from the read models.
    seed(&s, &[(&e, name, inside)]).await;
    let (api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    (api_worker, api, b, e)
}

/// The ids of the events on the overview, from their rows' links.
async fn shown_events(b: &Browser) -> Vec<String> {
    let v = b
        .js("return [...document.querySelectorAll('#rows th a')].map(a => decodeURIComponent(a.getAttribute('href').slice(8)));")
        .await;
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// The count of requests `muster api` answered for the page route `route`.
async fn served(api: &Api, route: &str) -> u64 {
    let label = format!("route=\"{route}\"");
    common::scrape(&api.base)
        .await
        .lines()
        .filter(|l| l.starts_with("muster_api_requests_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_sees_exactly_its_events_and_an_event_not_granted_is_refused() {
    let (s, run, dir, _) = Run::begin().parts();
    let (a1, a2, b1) = (format!("wa{run}"), format!("wa2{run}"), format!("wb{run}"));
    seed(
        &s,
        &[
            (&a1, "Seoul Expo", 640),
            (&a2, "Busan Jazz", 120),
            (&b1, "Other Fest", 77),
        ],
    )
    .await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let key = api.partner_key("partner", &[&a1, &a2]).await;

    let b = Browser::start(&api.base, DESKTOP).await;
    // Signed out, a page leads to the sign-in form.
    b.goto("/").await;
    assert_eq!(b.path().await, "/sign-in");
    b.screenshot("sign-in-1280").await;
    b.sign_in(&key).await;
    assert_eq!(shown_events(&b).await, {
        let mut v = vec![a1.clone(), a2.clone()];
        v.sort();
        v
    });
    // The same as the JSON API shows the key.
    let (_, json) = api
        .get(common::api::Auth::Key(&key), "/api/partner/events")
        .await;
    assert_eq!(json["events"].as_array().unwrap().len(), 2);
    assert_eq!(b.text("#card-inside .value").await, "760");
    let weight = b.weight().await;
    eprintln!("overview first load: {weight} bytes");
    assert!(
        weight < 200_000,
        "the overview's first load took {weight} bytes"
    );
    b.screenshot("overview-1280").await;

    // Another partner's event: refused, and nothing of it shown.
    b.goto(&format!("/events/{b1}")).await;
    assert!(
        b.text("h1").await.starts_with("403"),
        "{}",
        b.text("main").await
    );
    assert!(!b.text("main").await.contains("Other Fest"));
    // The browser logs the 403 it was answered (once it has), and nothing else.
    let refused = format!(
        "/events/{b1} - Failed to load resource: the server responded with a status of 403"
    );
    let logged = wait_for("the 403 in the console", Duration::from_secs(10), || {
        let (b, refused) = (&b, &refused);
        async move {
            let errors = b.console_errors().await;
            errors.iter().any(|e| e.contains(refused)).then_some(errors)
        }
    })
    .await;
    assert!(logged.iter().all(|e| e.contains(&refused)), "{logged:#?}");
    b.goto(&format!("/events/{a1}")).await;
    assert_eq!(b.text("h1").await, "Seoul Expo");
    // A partner never sees the upstream service.
    assert_eq!(
        b.js("return !document.querySelector('#health');").await,
        true
    );
    // The event page's stream is refused the same way.
    let session = b.client.get_named_cookie("muster_session").await.unwrap();
    let stream = |event: &str| {
        reqwest::Client::new()
            .get(format!("{}/live/event?event={event}", api.base))
            .header("cookie", format!("muster_session={}", session.value()))
            .send()
    };
    assert_eq!(stream(&b1).await.unwrap().status(), 403);
    assert_eq!(stream(&a1).await.unwrap().status(), 200);
    // Searching filters the rows in place.
    b.goto("/?q=busan").await;
    assert_eq!(shown_events(&b).await, vec![a2.clone()]);

    b.resize(PHONE).await;
    b.goto("/").await;
    b.screenshot("overview-390").await;
    b.finish().await;
}

/// `muster project` with the projections the pages watch, consuming from now on, and the
/// database it writes.
async fn projecting(
    s: &Services,
    run: &str,
    dir: &std::path::Path,
) -> (Worker, tokio_postgres::Client) {
    let worker = Worker::start(
        "project",
        &["project", "--only", "event_realtime", "--only", "alerts"],
        &worker_env(&format!("w{run}"), free_port()),
        dir,
    );
    (worker, db::connect(&s.database).await)
}

fn snapshot(event: &str, at: i64, inside: i64) -> NormalizedMetrics {
    NormalizedMetrics {
        capacity: Some(5000),
        ..normalized(event, at, inside)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_snapshot_changes_the_open_overview_over_sse_without_polling() {
    let run_ = Run::begin();
    let (s, run, dir, codec) = run_.parts();
    let e = format!("wl{run}");
    seed(&s, &[(&e, "Live Arena", 5)]).await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let (_project, client) = projecting(&s, &run, &dir).await;
    wait_until_projecting(&producer(&s), &codec, &client, &e).await;

    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    b.wait_live().await;
    let pages = served(&api, "/").await;
    let streams = served(&api, "/live/overview").await;

    let p = producer(&s);
    send(
        &p,
        &codec,
        &snapshot(&e, chrono::Utc::now().timestamp_millis(), 4321),
    )
    .await;
    let row = format!("#{} .inside", web_row_id(&e));
    b.wait_until(
        "the new number on the open page",
        &format!("return document.querySelector('{row}').textContent.trim() === '4,321';"),
    )
    .await;
    assert_eq!(b.text("#card-inside .value").await, "4,321");
    // It came over the stream: the page asked for nothing, and the server served nothing new.
    assert_eq!(b.script_requests().await, Vec::<String>::new());
    assert_eq!(
        served(&api, "/").await,
        pages,
        "the page was requested again"
    );
    assert_eq!(
        served(&api, "/live/overview").await,
        streams,
        "the stream was opened again"
    );
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alert_appears_on_the_open_alerts_page() {
    let (s, run, dir, codec) = Run::begin().parts();
    let e = format!("wt{run}");
    seed(&s, &[(&e, "Alert Hall", 5)]).await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let (_project, client) = projecting(&s, &run, &dir).await;
    wait_until_projecting(&producer(&s), &codec, &client, &e).await;
    let key = api.partner_key("partner", &[&e]).await;

    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&key).await;
    b.goto("/alerts").await;
    b.wait_live().await;
    assert!(b.text("#alert-table").await.contains("No alert"));

    let now = chrono::Utc::now().timestamp_millis();
    send(
        &producer(&s),
        &codec,
        &gate_down(&e, 3, AlertAction::Raised, now, now),
    )
    .await;
    b.wait_until(
        "the alert on the open page",
        "return document.querySelector('#alert-table').textContent.includes('gate G3 down');",
    )
    .await;
    assert_eq!(b.script_requests().await, Vec::<String>::new());
    let row = b.text("#alert-table tbody tr").await;
    assert!(
        row.contains("Alert Hall") && row.contains("Gate down") && row.contains("Active"),
        "{row}"
    );
    b.screenshot("alerts-1280").await;
    b.resize(PHONE).await;
    b.goto("/alerts").await;
    b.screenshot("alerts-390").await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn korean_shows_translated_labels_and_the_events_local_times() {
    let (_api_worker, _api, b, e) = admin_with_event("wk", "서울 페스티벌", 321).await;
    assert_eq!(b.text("h1").await, "Overview");
    b.switch_language("ko").await;
    assert_eq!(b.text("h1").await, "개요");
    assert_eq!(b.text("#card-inside .label").await, "현재 입장 인원");
    // The snapshot was observed now; the page shows it at Seoul's time, labelled.
    let seoul = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
    let updated = b.text(&format!("#{} .updated", web_row_id(&e))).await;
    let now = chrono::Utc::now().with_timezone(&seoul);
    let before = now - chrono::Duration::minutes(1);
    assert!(
        [now, before]
            .iter()
            .any(|t| updated.contains(&t.format("%H:%M").to_string())),
        "{updated} is not Seoul's time"
    );
    assert!(
        updated.contains("UTC+09:00") && updated.contains("전"),
        "{updated}"
    );
    b.screenshot("overview-ko-1280").await;
    b.resize(PHONE).await;
    b.goto("/").await;
    b.screenshot("overview-ko-390").await;
    // The choice stays: the alerts page is Korean too.
    b.goto("/alerts").await;
    assert_eq!(b.text("h1").await, "알림");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_its_cookie_opens_nothing() {
    let (_s, _run, dir, _) = Run::begin().parts();
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    let cookie = b.client.get_named_cookie("muster_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let value = cookie.value().to_owned();
    let with_cookie = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/", api.base))
            .header("cookie", format!("muster_session={value}"))
    };
    assert_eq!(with_cookie().send().await.unwrap().status(), 200);

    b.click("form[action='/sign-out'] button").await;
    b.wait_until(
        "the sign-in form",
        "return location.pathname === '/sign-in';",
    )
    .await;
    let after = with_cookie().send().await.unwrap();
    assert_eq!(after.status(), 303);
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/sign-in")
    );
    b.goto("/alerts").await;
    assert_eq!(b.path().await, "/sign-in");
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused() {
    let (_s, _run, dir, _) = Run::begin().parts();
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/sign-in", api.base))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    let csrf_cookie = cookie.split(';').next().unwrap().to_owned();
    let token = csrf_cookie.split_once('=').unwrap().1.to_owned();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "{html}"
    );
    assert!(!html.contains(ADMIN));

    let post = |form: Vec<(&'static str, String)>| {
        http.post(format!("{}/sign-in", api.base))
            .header("cookie", &csrf_cookie)
            .form(&form)
            .send()
    };
    let refused = post(vec![("secret", ADMIN.into())]).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("did not come from this site")
    );
    let wrong = post(vec![("secret", ADMIN.into()), ("csrf", "0".repeat(64))])
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let signed = post(vec![("secret", ADMIN.into()), ("csrf", token.clone())])
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let session = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let session = session.split(';').next().unwrap().to_owned();

    // Signed in, a sign-out without the session's token is refused and the session lives on.
    let out = http
        .post(format!("{}/sign-out", api.base))
        .header("cookie", &session)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    let home = http
        .get(format!("{}/", api.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    // Its own token is in its page, and never the key.
    let html = home.text().await.unwrap();
    assert!(!html.contains(ADMIN) && !html.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_is_usable_with_the_keyboard_alone() {
    let (_api_worker, _api, b, e) = admin_with_event("wy", "Keyboard Fair", 50).await;
    b.goto("/").await;
    let mut reached = Vec::new();
    for _ in 0..40 {
        b.tab().await;
        let el = b
            .js("const a = document.activeElement; return a.id || a.getAttribute('href') || a.name || a.tagName;")
            .await;
        reached.push(el.as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(reached[0], "#main", "the skip link first: {reached:?}");
    for want in ["q", "type", "status", "sort-name", "sort-inside"] {
        assert!(
            reached.iter().any(|r| r == want),
            "{want} not reached: {reached:?}"
        );
    }
    let row_link = format!("/events/{e}");
    assert!(
        reached.contains(&row_link),
        "the row not reached: {reached:?}"
    );
    // The skip link leads to the content.
    b.goto("/").await;
    b.tab().await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{e007}")
        .await
        .unwrap();
    b.wait_until(
        "focus on main",
        "return document.activeElement.id === 'main';",
    )
    .await;
    // Focus is visible.
    b.tab().await;
    let outline = b
        .js("return getComputedStyle(document.activeElement).outlineStyle;")
        .await;
    assert_ne!(outline, "none");
    b.finish().await;
}

/// The row id the overview gives an event whose id is letters, digits and dashes.
fn web_row_id(event: &str) -> String {
    format!("row-{event}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_watches_services_live_and_a_service_page_hides_its_credentials() {
    let stack = Stack::start(&["--events", "1", "--auth", "api_key", "--interval", "1"]).await;
    let event = stack.event(1);
    let body = stack.registration(1).await;
    let (status, _) = stack.register(&body).await;
    assert!(status == 201 || status == 200, "registering: {status}");

    let b = Browser::start(&stack.api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    b.goto("/services").await;
    assert_eq!(b.text("h1").await, "Services");
    b.wait_live().await;
    let row = format!("document.querySelector('#service-table a[href=\"/services/{event}\"]')");
    assert!(b.js(&format!("return !!{row};")).await.as_bool().unwrap());
    // Nobody polls it yet; an ingest process taking its lease (it needs a while to start)
    // shows on the open page within one redraw.
    let _ingest = stack.start_ingest(["ingest-web"]).await;
    let owner: String = wait_for("the lease taken", Duration::from_secs(60), || {
        let stack = &stack;
        let event = &event;
        async move {
            let (_, all) = stack
                .api
                .admin(Method::GET, "/api/admin/services", None)
                .await;
            let ours = all["services"]
                .as_array()?
                .iter()
                .find(|s| s["eventId"] == event.as_str())?;
            Some(ours["status"]["polledBy"].as_str()?.to_owned())
        }
    })
    .await;
    b.wait_until(
        "the polling process on the open page",
        &format!("return {row}.closest('tr').textContent.includes({owner:?});"),
    )
    .await;
    b.screenshot("services-1280").await;

    // The service's page: its configuration, and none of its credentials.
    b.goto(&format!("/services/{event}")).await;
    let page = b.text("main").await;
    assert!(
        page.contains(body["endpoints"]["api"].as_str().unwrap()),
        "{page}"
    );
    assert!(
        page.contains("api_key"),
        "the kind of authentication: {page}"
    );
    let key = body["authentication"]["credentials"]["key"]
        .as_str()
        .unwrap();
    let html = b.js("return document.documentElement.outerHTML;").await;
    assert!(
        !html.as_str().unwrap().contains(key),
        "the credential on the page"
    );
    b.resize(PHONE).await;
    b.goto("/services").await;
    b.screenshot("services-390").await;
    b.finish().await;

    // A partner is refused the services, their page and their stream.
    let key = stack.api.partner_key("partner", &[&event]).await;
    let p = Browser::start(&stack.api.base, DESKTOP).await;
    p.sign_in(&key).await;
    assert!(!p.text("header").await.contains("Services"));
    for path in ["/services".to_owned(), format!("/services/{event}")] {
        p.goto(&path).await;
        assert!(p.text("h1").await.starts_with("403"), "{path}");
    }
}

/// The event's UTC offset that puts now near noon there (whole hours), so the page's day holds
/// everything seeded in the last hours whenever the test runs.
fn noon_offset_minutes() -> i32 {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let minutes = (now.hour() * 60 + now.minute()) as f64;
    ((720.0 - minutes) / 60.0).round() as i32 * 60
}

/// The event page's material for `event` (seeded by [`seed`]): its zone moved near noon, two
/// gates over the last half hour and as the latest snapshot reports them (G1 open, G2 down), a
/// resolved occupancy alert and an active gate-down one, the service's health going down and
/// back, and a forecast with a recommendation.
async fn seed_event_day(s: &Services, event: &str, offset_minutes: i32) {
    let client = db::connect(&s.database).await;
    client
        .execute(
            "UPDATE event_catalogue SET utc_offset_minutes = $2 WHERE event_id = $1",
            &[&event, &offset_minutes],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO gate_series_minute (event_id, gate_id, bucket, entries, exits)
             SELECT $1, 'G1', date_trunc('minute', now()) - make_interval(mins => g), 10 + g % 5, 2
             FROM generate_series(0, 29) g
             UNION ALL
             SELECT $1, 'G2', date_trunc('minute', now()) - make_interval(mins => g), 3, 1
             FROM generate_series(20, 29) g",
            &[&event],
        )
        .await
        .unwrap();
    let gates = serde_json::json!([
        {"gateId": "G1", "status": "open", "throughput": 11.5},
        {"gateId": "G2", "status": "down", "throughput": 0.0},
    ]);
    client
        .execute(
            "UPDATE event_realtime SET gate_activity = $2 WHERE event_id = $1",
            &[&event, &gates],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO alerts (alert_id, event_id, kind, subject, severity, message, raised_at,
                 resolved_at, duration_ms, state)
             VALUES ($1 || ':gate-down:G2', $1, 'gate-down', 'G2', 'critical', 'gate G2 is down',
                     now() - interval '20 minutes', NULL, NULL, 'active'),
                    ($1 || ':occupancy', $1, 'occupancy', NULL, 'warning',
                     '930 attendees, 93% of capacity 1000', now() - interval '50 minutes',
                     now() - interval '38 minutes', 720000, 'resolved')",
            &[&event],
        )
        .await
        .unwrap();
    // The history's place in its topic: unique across runs sharing the database.
    let offset = chrono::Utc::now().timestamp_micros();
    client
        .execute(
            "INSERT INTO service_health_history (source_partition, source_offset, event_id,
                 service_name, at, previous, current, reason, latency_ms, consecutive_failures)
             VALUES (99, $2, $1, 'gates', now() - interval '100 minutes', NULL, 'healthy', 'ok', 85, 0),
                    (99, $2 + 1, $1, 'gates', now() - interval '40 minutes', 'healthy', 'down',
                     'HTTP 500', NULL, 3),
                    (99, $2 + 2, $1, 'gates', now() - interval '25 minutes', 'down', 'healthy',
                     'ok', 92, 0)",
            &[&event, &offset],
        )
        .await
        .unwrap();
    let forecast = serde_json::json!({
        "eventId": event, "eventType": "festival", "phase": "ongoing", "registered": 1000,
        "showUpRate": {"expected": 0.82, "low": 0.74, "high": 0.9},
        "finalAttendance": {"expected": 820.0, "low": 740.0, "high": 900.0},
        "peakAttendees": {"expected": 610.0, "low": 540.0, "high": 690.0},
        "gatesNeeded": 3, "gatesOpen": 2, "risks": [], "similarEvents": ["past-1", "past-2", "past-3"],
        "similarEventCount": 3, "backtest": {"events": 12, "mape": 8.5, "intervalCoverage": 0.83},
    });
    client
        .execute(
            "INSERT INTO insight_forecasts VALUES ($1, 'festival', 'ongoing', 1000, 0.82, 0.74,
                 0.9, 820, 740, 900, NULL, NULL, 3, 2, 8.5, $2) ON CONFLICT DO NOTHING",
            &[&event, &forecast],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO insight_recommendations VALUES ($1, 'open-gates',
                 'Open 1 more gate: similar events peaked at 14 entries a minute per gate', $2)",
            &[
                &event,
                &serde_json::json!({"gatesNeeded": 3, "gatesOpen": 2, "peakEntriesPerMinute": 41.5}),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_page_shows_its_day_as_charts_with_tables_and_updates_live() {
    let (s, run, dir, codec) = Run::begin().parts();
    let e = format!("we{run}");
    seed(&s, &[(&e, "Seoul Expo", 420)]).await;
    let offset = noon_offset_minutes();
    seed_event_day(&s, &e, offset).await;
    let zone = chrono::FixedOffset::east_opt(offset * 60).unwrap();
    let label = if offset == 0 {
        "UTC".to_owned()
    } else {
        format!("UTC{zone}")
    };
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let (_project, client) = projecting(&s, &run, &dir).await;
    wait_until_projecting(&producer(&s), &codec, &client, &format!("wq{run}")).await;

    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    b.goto(&format!("/events/{e}")).await;
    assert_eq!(b.text("h1").await, "Seoul Expo");
    let zone_note = b.text("#zone").await;
    assert!(
        zone_note.contains(&label),
        "{zone_note} does not name {label}"
    );
    // The charts are drawn, and their numbers are tables.
    b.wait_until(
        "both charts drawn",
        "return !!document.querySelector('#chart-attendance canvas') && !!document.querySelector('#chart-gates canvas');",
    )
    .await;
    let attendance = b
        .js("return document.querySelector('#attendance-numbers table').textContent;")
        .await;
    assert!(
        attendance.as_str().unwrap().contains("420"),
        "the latest minute: {attendance}"
    );
    let gate_numbers = b
        .js("return document.querySelector('#gate-numbers thead').textContent;")
        .await;
    assert!(
        gate_numbers.as_str().unwrap().contains("G1 · Entries")
            && gate_numbers.as_str().unwrap().contains("G2 · Exits"),
        "{gate_numbers}"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#gate-numbers tbody tr').length;")
            .await,
        30
    );
    let gates = b.text("#gate-table").await;
    let g1 = b.text("#gate-table tbody tr:nth-child(1)").await;
    let g2 = b.text("#gate-table tbody tr:nth-child(2)").await;
    assert!(g1.starts_with("G1") && g1.contains("Open"), "{gates}");
    assert!(g2.starts_with("G2") && g2.contains("Down"), "{gates}");
    // The forecast's final attendance with its interval (unless the insights job, running
    // beside this test, replaced every forecast before the page was read).
    let forecast = b.text("#attendance .forecast").await;
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM insight_forecasts WHERE event_id = $1",
            &[&e],
        )
        .await
        .unwrap()
        .get(0);
    if kept == 1 {
        assert!(forecast.contains("820 (interval 740–900)"), "{forecast}");
    }
    // Alerts as a timeline: the resolved one with its duration, the active one still running.
    let alerts = b.text("#alerts .timeline").await;
    assert!(
        alerts.contains("Gate down · G2") && alerts.contains("still active"),
        "{alerts}"
    );
    assert!(alerts.contains("(12 min)"), "{alerts}");
    // The admin sees the service's health history.
    let health = b.text("#health-table").await;
    assert!(
        health.contains("HTTP 500") && health.contains("Down"),
        "{health}"
    );
    // The live rules' recommendation, with its evidence.
    let insights = b.text("#insights").await;
    assert!(
        insights.contains("Critical alerts") && insights.contains("activeCriticalAlerts"),
        "{insights}"
    );
    // Gates are chosen with the keyboard.
    b.js("document.querySelector('#gate-pick input').focus();")
        .await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(" ")
        .await
        .unwrap();
    assert_eq!(
        b.js("return document.querySelector('#gate-pick input').checked;")
            .await,
        false
    );
    b.js("document.querySelector('#gate-pick input').click(); document.activeElement.blur(); window.scrollTo(0, 0);")
        .await;
    b.screenshot("event-1280").await;

    // A new snapshot changes the headline over the stream.
    b.wait_live().await;
    let pages = served(&api, "/events/{eventId}").await;
    let streams = served(&api, "/live/event").await;
    let at = chrono::Utc::now().timestamp_millis();
    let snapshot = NormalizedMetrics {
        capacity: Some(1000),
        gate_activity: vec![
            GateActivity {
                gate_id: "G1".into(),
                status: "open".into(),
                throughput: 17.0,
            },
            GateActivity {
                gate_id: "G2".into(),
                status: "down".into(),
                throughput: 0.0,
            },
        ],
        ..normalized(&e, at, 864)
    };
    send(&producer(&s), &codec, &snapshot).await;
    b.wait_until(
        "the new number on the open event page",
        "return document.querySelector('#ev-inside .value').textContent.trim() === '864';",
    )
    .await;
    assert!(
        b.text("#gate-table tbody tr:nth-child(1)")
            .await
            .contains("17.0")
    );
    assert_eq!(b.script_requests().await, Vec::<String>::new());
    assert_eq!(served(&api, "/events/{eventId}").await, pages);
    assert_eq!(served(&api, "/live/event").await, streams);

    // Korean: translated labels, the same zone.
    b.switch_language("ko").await;
    assert_eq!(b.text("#attendance-title").await, "하루 동안의 입장 인원");
    assert!(b.text("#gate-table thead").await.contains("게이트"));
    assert!(b.text("#zone").await.contains("이벤트 현지 시간대"));
    b.click("form.lang button[value=en]").await;
    b.wait_until(
        "the page in English",
        "return document.documentElement.lang === 'en';",
    )
    .await;

    // A phone: nothing wider than the screen but the tables' own scrolling.
    b.resize(PHONE).await;
    b.goto(&format!("/events/{e}")).await;
    b.wait_until(
        "the charts drawn at 390 px",
        "return !!document.querySelector('#chart-gates canvas');",
    )
    .await;
    let wide = b
        .js("return [...document.querySelectorAll('main *')]
               .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1
                          && !el.closest('.scroll, .chart'))
               .map(el => el.tagName + '#' + el.id + '.' + el.className);")
        .await;
    assert_eq!(wide, serde_json::json!([]), "wider than the phone");
    b.screenshot("event-390").await;
    b.finish().await;
}
