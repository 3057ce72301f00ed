//! Search over events (`q=`) against a real `muster api` and PostgreSQL (full text and
//! pg_trgm in a UTF-8 database): Korean and English names, partial words, the rank (an exact
//! id first, then full-text rank, then trigram similarity), the matched field, wildcards taken
//! literally, an over-long text refused, a partner never finding an event it was not granted,
//! and the dashboard's search box in a real browser. The catalogue is seeded directly, as the
//! projection writes it.

use crate::common;

use common::api::{ADMIN, Api, Auth, each, start_api};
use common::browser::{Browser, DESKTOP, PHONE};
use common::{Run, Services, Worker, db, free_port, producer, send, wait_for, worker_env};
use muster_schemas::CatalogueEntry;
use reqwest::Method;
use serde_json::Value;

/// `events` (id, name, venue, type) in the catalogue, each live with 300 attending.
async fn seed(s: &Services, events: &[(&str, &str, Option<&str>, &str)]) {
    let client = db::connect(&s.database).await;
    for (id, name, venue, event_type) in events {
        client
            .execute(
                "INSERT INTO event_catalogue (event_id, service_name, name, venue, event_type,
                    capacity, removed, version_at)
                 VALUES ($1, 'svc', $2, $3, $4, 1000, false, now())",
                &[id, name, venue, event_type],
            )
            .await
            .unwrap();
        db::insert_realtime(&client, id, 300).await;
    }
}

/// `q` percent-encoded for a query string (every byte but the unreserved ones).
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `path?q=<q>` as `auth` sees it: the status and the body.
async fn search(api: &Api, auth: Auth<'_>, path: &str, q: &str) -> (u16, Value) {
    let res = api
        .request(Method::GET, &format!("{path}?q={}", encode(q)), auth)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The ids and matched fields of a list, in its order.
fn hits(body: &Value) -> Vec<(String, String)> {
    body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {body}"))
        .iter()
        .map(|e| {
            let field = e["matchedField"].as_str().unwrap_or("-");
            (e["eventId"].as_str().unwrap().to_owned(), field.to_owned())
        })
        .collect()
}

fn hit(id: &str, field: &str) -> (String, String) {
    (id.to_owned(), field.to_owned())
}

struct Catalogue {
    book: String,
    park: String,
    conf: String,
    meetup: String,
    after: String,
    pct: String,
}

/// Six events whose names, venues and types exercise each way of matching.
async fn catalogue(s: &Services, run: &str) -> Catalogue {
    let c = Catalogue {
        book: format!("book{run}"),
        park: format!("park{run}"),
        conf: format!("conf{run}"),
        meetup: format!("meetup{run}"),
        after: format!("after{run}"),
        pct: format!("pct{run}"),
    };
    let after_name = format!("Afterparty of {}", c.meetup);
    seed(
        s,
        &[
            (&c.book, "서울국제도서전", Some("코엑스"), "전시회"),
            (&c.park, "Jazz Picnic", Some("서울 올림픽공원"), "festival"),
            (
                &c.conf,
                "Rust Conference",
                Some("Seoul Convention Center"),
                "tech",
            ),
            (&c.meetup, "Startup Meetup", Some("Pangyo"), "conference"),
            (&c.after, &after_name, Some("Pangyo"), "party"),
            (&c.pct, "100% Pure Jazz", None, "concert"),
        ],
    )
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_korean_and_english_partial_words_ranked_with_the_field_matched() {
    let (s, run, dir, _) = Run::begin().parts();
    // Seeded before the API starts, which loads its in-memory view from the read models.
    let c = catalogue(&s, &run).await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let public = "/api/public/events";

    // Korean: `서울` is a whole word of the park's venue (full-text rank) and a part of the
    // book fair's name (trigram `ILIKE` only): the whole word ranks first.
    let (status, body) = search(&api, Auth::None, public, "서울").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hits(&body),
        [hit(&c.park, "venue"), hit(&c.book, "name")],
        "{body}"
    );
    assert_eq!(body["events"][0]["venue"], "서울 올림픽공원");
    // A part of a Korean word alone.
    let (_, body) = search(&api, Auth::None, public, "국제도서").await;
    assert_eq!(hits(&body), [hit(&c.book, "name")], "{body}");

    // English, partial and any case: `conf` in a name and in a type.
    let (_, body) = search(&api, Auth::None, public, "CONF").await;
    assert_eq!(
        hits(&body),
        [hit(&c.conf, "name"), hit(&c.meetup, "type")],
        "{body}"
    );
    // All the words, not side by side: full-text search.
    let (_, body) = search(&api, Auth::None, public, "seoul center").await;
    assert_eq!(hits(&body), [hit(&c.conf, "venue")], "{body}");
    // Words spread over fields still find the event.
    let (_, body) = search(&api, Auth::None, public, "rust tech").await;
    assert_eq!(
        each(&body["events"], "eventId"),
        [c.conf.as_str()],
        "{body}"
    );

    // An exact id ranks first, even before a name holding the same word (which outranks an
    // id in full-text rank).
    let (_, body) = search(&api, Auth::None, public, &c.meetup.to_uppercase()).await;
    assert_eq!(
        hits(&body),
        [hit(&c.meetup, "id"), hit(&c.after, "name")],
        "{body}"
    );

    // Wildcards are literal: `%` finds the one name with a percent sign, `_` nothing.
    let (_, body) = search(&api, Auth::None, public, "%").await;
    assert_eq!(hits(&body), [hit(&c.pct, "name")], "{body}");
    let (_, body) = search(&api, Auth::None, public, "_").await;
    assert_eq!(hits(&body), [], "{body}");
    // Quotes and SQL are only text.
    let (status, body) = search(&api, Auth::None, public, "'; DROP TABLE x; --").await;
    assert_eq!((status, hits(&body)), (200, vec![]), "{body}");

    // Blank is no filter: every event, by id, without a matched field.
    let (_, body) = search(&api, Auth::None, public, "  ").await;
    let mut all = [&c.book, &c.park, &c.conf, &c.meetup, &c.after, &c.pct];
    all.sort();
    assert_eq!(
        hits(&body),
        all.iter().map(|e| hit(e, "-")).collect::<Vec<_>>()
    );

    // 200 characters are searched; 201 are refused with a problem naming the limit.
    let (status, body) = search(&api, Auth::None, public, &"가".repeat(200)).await;
    assert_eq!((status, hits(&body)), (200, vec![]), "{body}");
    let res = api
        .request(
            Method::GET,
            &format!("{public}?q={}", encode(&"가".repeat(201))),
            Auth::None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = res.json().await.unwrap();
    assert_eq!(
        problem["type"], "https://muster.dev/problems/invalid-query",
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("200"),
        "{problem}"
    );

    // The dashboard's list searches the same way.
    let (status, body) = search(&api, Auth::Bearer(ADMIN), "/api/dashboard", "서울").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        each(&body["events"], "eventId"),
        [c.park.as_str(), c.book.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_never_finds_an_event_it_was_not_granted() {
    let (s, run, dir, _) = Run::begin().parts();
    // Seeded before the API starts, which loads its in-memory view from the read models.
    let c = catalogue(&s, &run).await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let key = api.partner_key("partner", &[&c.book, &c.conf]).await;
    let mine = "/api/partner/events";

    // `서울` matches the park too (publicly, first): the partner gets only its book fair.
    let (_, body) = search(&api, Auth::None, "/api/public/events", "서울").await;
    assert_eq!(each(&body["events"], "eventId").len(), 2, "{body}");
    let (status, body) = search(&api, Auth::Key(&key), mine, "서울").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits(&body), [hit(&c.book, "name")], "{body}");
    // Texts that match only events not granted find nothing, by name or by exact id.
    for q in ["jazz", c.park.as_str(), c.meetup.as_str(), "%"] {
        let (status, body) = search(&api, Auth::Key(&key), mine, q).await;
        assert_eq!((status, hits(&body)), (200, vec![]), "{q}: {body}");
    }
    let (status, body) = search(&api, Auth::Key(&key), "/api/dashboard", "jazz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(each(&body["events"], "eventId"), Vec::<&str>::new());
    // Its own, by a partial word of the type it cannot see publicly any differently.
    let (_, body) = search(&api, Auth::Key(&key), mine, "tec").await;
    assert_eq!(hits(&body), [hit(&c.conf, "type")], "{body}");
    // And the limit holds here too.
    let (status, _) = search(&api, Auth::Key(&key), mine, &"x".repeat(201)).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_search_box_filters_the_list_as_you_type() {
    let (s, run, dir, _) = Run::begin().parts();
    // Seeded before the API starts, which loads its in-memory view from the read models.
    let c = catalogue(&s, &run).await;
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;
    let shown = || async {
        let v = b
            .js("return [...document.querySelectorAll('#rows tr')].map(r => r.id);")
            .await;
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let rows = |events: &[&String]| {
        let mut v: Vec<String> = events.iter().map(|e| format!("row-{e}")).collect();
        v.sort();
        v
    };
    assert_eq!(shown().await.len(), 6);

    // Typing into the box filters the list in place (htmx), and the address keeps the search.
    b.find("#q").await.send_keys("서울").await.unwrap();
    b.wait_until(
        "the list filtered to 서울",
        "return document.querySelectorAll('#rows tr').length === 2;",
    )
    .await;
    assert_eq!(shown().await, rows(&[&c.book, &c.park]));
    // A row matched by what it does not show says where: the park by its venue.
    let park_row = format!("#row-{} th", c.park);
    assert!(
        b.text(&park_row).await.contains("Venue: 서울 올림픽공원"),
        "{}",
        b.text(&park_row).await
    );
    assert!(
        !b.text(&format!("#row-{} th", c.book))
            .await
            .contains("Venue")
    );
    b.wait_until(
        "the search in the address",
        "return new URLSearchParams(location.search).get('q') === '서울';",
    )
    .await;
    b.screenshot("search-1280").await;

    // A partial English word, submitted with Enter.
    b.js("document.querySelector('#q').value = '';").await;
    b.find("#q").await.send_keys("conf\u{e007}").await.unwrap();
    b.wait_until(
        "the list filtered to conf",
        "return new URLSearchParams(location.search).get('q') === 'conf' \
         && document.querySelectorAll('#rows tr').length === 2;",
    )
    .await;
    assert_eq!(shown().await, rows(&[&c.conf, &c.meetup]));

    // Without JavaScript's help the form is a plain GET: the address alone searches, and the
    // box shows what was searched; in Korean, with its Korean label.
    b.goto("/?q=%25").await;
    assert_eq!(shown().await, rows(&[&c.pct]));
    assert_eq!(
        b.js("return document.querySelector('#q').value;").await,
        "%"
    );
    b.switch_language("ko").await;
    assert_eq!(b.text("label[for=q]").await, "이름, 장소, 유형, ID 검색");
    b.goto("/?q=서울").await;
    assert_eq!(shown().await, rows(&[&c.book, &c.park]));
    b.resize(PHONE).await;
    b.screenshot("search-ko-390").await;

    // An over-long search is refused next to the field, not silently cut.
    b.resize(DESKTOP).await;
    b.switch_language("en").await;
    b.goto(&format!("/?q={}", "x".repeat(201))).await;
    let why = b.text("#q-error").await;
    assert!(why.contains("200"), "{why}");
    assert_eq!(
        b.js("return document.querySelector('#q').getAttribute('aria-describedby');")
            .await,
        "q-error"
    );
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_database_whose_ctype_hides_korean_from_search() {
    let (s, run, dir, _) = Run::begin().parts();
    // A database of the C ctype, as a cluster initialised without a locale makes them.
    let (server, _) = s.database.rsplit_once('/').unwrap();
    let name = format!("muster_search_c_{run}");
    let psql = |sql: String| {
        let out = std::process::Command::new("psql")
            .args([&format!("{server}/postgres"), "-qc", &sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {out:?}");
    };
    psql(format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
    ));
    let env = [
        ("MUSTER_DATABASE_URL", format!("{server}/{name}")),
        ("MUSTER_API_ADDR", format!("127.0.0.1:{}", free_port())),
        ("MUSTER_ADMIN_TOKEN", ADMIN.to_owned()),
        ("MUSTER__OPS__ADDR", format!("127.0.0.1:{}", free_port())),
    ];
    let mut api = Worker::start("api", &["api"], &env, &dir);
    let status = wait_for(
        "the API to refuse the database",
        std::time::Duration::from_secs(120),
        || {
            let status = api.try_status();
            async move { status }
        },
    )
    .await;
    psql(format!("DROP DATABASE {name} WITH (FORCE)"));
    assert!(!status.success());
    let log = api.log();
    assert!(
        log.contains(&format!(
            "database {name}: its LC_CTYPE C leaves Korean out"
        )) && log.contains("LC_CTYPE 'C.UTF-8'"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_registered_through_the_catalogue_topic_is_found_by_its_korean_venue() {
    let (s, run, dir, codec) = Run::begin().parts();
    let env = worker_env(&format!("s{run}"), free_port());
    let _project = Worker::start(
        "project-catalogue",
        &["project", "--only", "event_catalogue"],
        &env,
        &dir,
    );
    let (_api_worker, api) = start_api(&dir, &env).await;
    let p = producer(&s);
    let event = format!("busan{run}");
    let entry = CatalogueEntry {
        event_id: event.clone(),
        service_name: "test".into(),
        name: "부산불꽃축제".into(),
        event_type: "festival".into(),
        venue: Some("광안리해수욕장".into()),
        capacity: Some(5000),
        starts_at: None,
        ends_at: None,
        utc_offset_minutes: Some(540),
        ticket_price: None,
        cost_total: None,
        other_income: None,
        currency: None,
        removed: false,
        at: chrono::Utc::now().timestamp_millis(),
    };
    // Re-sent until the projection, which reads the topic from its start, has it.
    let body = wait_for(
        "the catalogue entry to be found by a part of its venue",
        std::time::Duration::from_secs(90),
        || {
            let (p, codec, entry, api) = (&p, &codec, &entry, &api);
            async move {
                send(p, codec, entry).await;
                let (_, body) = search(api, Auth::None, "/api/public/events", "광안리").await;
                (!hits(&body).is_empty()).then_some(body)
            }
        },
    )
    .await;
    assert_eq!(hits(&body), [hit(&event, "venue")], "{body}");
    assert_eq!(body["events"][0]["venue"], "광안리해수욕장");
    let (_, body) = search(&api, Auth::None, "/api/public/events", "불꽃").await;
    assert_eq!(hits(&body), [hit(&event, "name")], "{body}");
}
