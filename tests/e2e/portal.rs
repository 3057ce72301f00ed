//! The partner portal end to end: its JSON routes (`/api/partner/key`, changing an
//! endpoint's event types, test events, the log filtered by type, one delivery with its
//! attempts) and its pages in a real browser, against `muster api` and `muster webhooks` as
//! processes and real receivers on loopback. What receivers get is verified with the
//! reference `standardwebhooks` library and validated against the catalogue's schemas.

use crate::common;

use std::time::Duration;

use common::api::{Api, Auth};
use common::browser::{Browser, DESKTOP, PHONE};
use common::hooks::{self, Behaviour, Received, Receivers, check, hooks_env};
use common::{Run, Worker, free_port, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// `muster api` and `muster webhooks` allowing loopback receivers, and a partner key granted
/// `events`.
async fn start(run: &Run, events: &[&str]) -> (Worker, Api, Worker, String) {
    let env = hooks_env(&run.id, free_port());
    let (api_worker, api) = common::api::start_api(&run.dir, &env).await;
    let hooks_worker = Worker::start("webhooks", &["webhooks"], &env, &run.dir);
    let key = api.partner_key("partner", events).await;
    (api_worker, api, hooks_worker, key)
}

/// Waits until `receiver` got `n` requests.
async fn got(receivers: &Receivers, receiver: &str, n: usize) -> Vec<Received> {
    wait_for(
        &format!("{n} requests at {receiver}"),
        Duration::from_secs(60),
        || {
            let got = receivers.got(receiver);
            async move { (got.len() >= n).then_some(got) }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partners_change_types_send_tests_and_read_one_delivery_with_its_attempts() {
    let r = Run::begin();
    let receivers = Receivers::default();
    receivers.add("ok", Behaviour::Always(200));
    let port = receivers.clone().serve().await;
    let event = format!("pt{}", r.id);
    let (_api_worker, api, _hooks_worker, key) = start(&r, &[&event]).await;

    // The key: its prefix, tier, grants and limit, this request counted.
    let (status, k) = api.get(Auth::Key(&key), "/api/partner/key").await;
    assert_eq!(status, 200, "{k}");
    assert_eq!(k["prefix"], &key[..11]);
    assert_eq!(k["tier"], "partner");
    assert_eq!(k["events"], json!([event]));
    let limit = &k["rateLimit"];
    assert!(
        limit["burst"].as_u64().unwrap() > limit["remaining"].as_u64().unwrap(),
        "{k}"
    );

    let (status, made) = api
        .call(
            Method::POST,
            "/api/partner/webhooks",
            Auth::Key(&key),
            Some(json!({"url": format!("http://127.0.0.1:{port}/hook/ok"), "eventTypes": ["alert.raised"]})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (id, secret) = (
        made["id"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    let path = format!("/api/partner/webhooks/{id}");

    // Changing the event types is checked as creating is.
    let patch = |types: Value| {
        api.call(
            Method::PATCH,
            &path,
            Auth::Key(&key),
            Some(json!({"eventTypes": types})),
        )
    };
    let (status, refused) = patch(json!(["alert.bogus"])).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        common::api::detail(&refused).contains("alert.bogus"),
        "{refused}"
    );
    let (status, refused) = patch(json!([])).await;
    assert_eq!(status, 422, "{refused}");
    let (status, changed) = patch(json!([
        "attendance.updated",
        "alert.resolved",
        "alert.resolved"
    ]))
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        changed["eventTypes"],
        json!(["alert.resolved", "attendance.updated"])
    );

    // A test event: queued, delivered and signed as any other, marked as a test.
    let (status, queued) = api
        .call(
            Method::POST,
            &format!("{path}/test"),
            Auth::Key(&key),
            Some(json!({"eventType": "attendance.updated"})),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["test"], true);
    let (status, bad) = api
        .call(
            Method::POST,
            &format!("{path}/test"),
            Auth::Key(&key),
            Some(json!({"eventType": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let received = got(&receivers, "ok", 1).await;
    let body = received[0].json();
    assert_eq!(body["type"], "attendance.updated");
    assert_eq!(received[0].id, queued["messageId"].as_str().unwrap());
    let out = hooks::third_party(
        &r.dir,
        "verify_webhooks.py",
        &vec![check(secret, &received[0])],
    );
    assert!(out.contains("1 verified"), "{out}");
    let bodies: Vec<String> = received.iter().map(|r| r.body.clone()).collect();
    hooks::validate_messages(&api, &key, &r.dir, &bodies).await;

    // The log by event type, and the one delivery with its attempt and payload.
    let log = |query: &str| {
        let url = format!("{path}/deliveries?{query}");
        let (api, key) = (&api, &key);
        async move {
            let (status, log) = api.get(Auth::Key(key), &url).await;
            assert_eq!(status, 200, "{log}");
            log["deliveries"].as_array().unwrap().clone()
        }
    };
    assert_eq!(log("eventType=alert.raised").await.len(), 0);
    assert_eq!(log("eventType=attendance.updated").await.len(), 1);
    let delivery = queued["id"].as_str().unwrap();
    let detail = wait_for("the attempt recorded", Duration::from_secs(30), || {
        let (api, key, url) = (&api, &key, format!("{path}/deliveries/{delivery}"));
        async move {
            let (status, d) = api.get(Auth::Key(key), &url).await;
            assert_eq!(status, 200, "{d}");
            (d["state"] == "delivered").then_some(d)
        }
    })
    .await;
    assert_eq!(detail["payload"], body);
    let attempts = detail["attemptLog"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{detail}");
    assert_eq!(attempts[0]["status"], 200);
    assert!(attempts[0]["latencyMs"].as_i64().is_some());
    let (status, _) = api
        .get(Auth::Key(&key), &format!("{path}/deliveries/dlv_nope"))
        .await;
    assert_eq!(status, 404);
}

/// Clicks the submit button of the endpoint page's form of `action`.
async fn submit(b: &Browser, action: &str) {
    b.find(&format!(
        "form.portal-form:has(input[name=action][value={action}]) button[type=submit]"
    ))
    .await
    .click()
    .await
    .unwrap();
}

/// Creates an endpoint on `/webhooks` for `url` and `types`; its id and secret, as shown.
async fn create(b: &Browser, url: &str, types: &[&str]) -> (String, String) {
    b.goto("/webhooks").await;
    b.find("#url").await.send_keys(url).await.unwrap();
    for t in types {
        b.click(&format!("input[name=event_types][value='{t}']"))
            .await;
    }
    b.click("form[action='/webhooks'] button[type=submit]")
        .await;
    b.wait_until(
        "the new secret",
        "return !!document.querySelector('#secret');",
    )
    .await;
    let secret = b.text("#secret").await;
    let link = b.find("main a[href^='/webhooks/']").await;
    let href = link.attr("href").await.unwrap().unwrap();
    (href.trim_start_matches("/webhooks/").to_owned(), secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partner_manages_webhooks_in_the_portal_and_watches_deliveries_live() {
    let r = Run::begin();
    let receivers = Receivers::default();
    receivers.add("ok", Behaviour::Always(200));
    receivers.add("down", Behaviour::Always(500));
    let port = receivers.clone().serve().await;
    let hook = |name: &str| format!("http://127.0.0.1:{port}/hook/{name}");
    let event = format!("pw{}", r.id);
    let (_api_worker, api, _hooks_worker, key) = start(&r, &[&event]).await;

    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&key).await;
    b.goto("/webhooks").await;
    assert!(b.text("header nav").await.contains("Webhooks"));

    // A private address is refused with the API's message next to the URL field.
    b.find("#url")
        .await
        .send_keys("http://10.1.2.3/hook")
        .await
        .unwrap();
    b.click("input[name=event_types][value='alert.raised']")
        .await;
    b.click("form[action='/webhooks'] button[type=submit]")
        .await;
    b.wait_until(
        "the refusal",
        "return !!document.querySelector('#url-error');",
    )
    .await;
    assert!(b.text("#url-error").await.starts_with("url:"));
    b.screenshot("portal-webhooks-refused-1280").await;
    // The refusal is answered 422, which the console reports; nothing else.
    let errors = b.console_errors().await;
    assert!(errors.len() == 1 && errors[0].contains("422"), "{errors:?}");

    // Created: the secret shown once, with snippets in three languages.
    let (ok_id, ok_secret) = create(&b, &hook("ok"), &["alert.raised"]).await;
    assert!(ok_secret.starts_with("whsec_"), "{ok_secret}");
    let snippets = b.text("main").await;
    for lib in ["Python", "Node", "Go"] {
        assert!(snippets.contains(lib), "{lib}");
    }
    b.screenshot("portal-created-1280").await;

    // A test event sent from the page reaches the receiver and verifies.
    b.goto(&format!("/webhooks/{ok_id}")).await;
    b.js("document.querySelector('#event_type').value = 'alert.raised';")
        .await;
    submit(&b, "test").await;
    let received = got(&receivers, "ok", 1).await;
    let out = hooks::third_party(
        &r.dir,
        "verify_webhooks.py",
        &vec![check(&ok_secret, &received[0])],
    );
    assert!(out.contains("1 verified"), "{out}");
    hooks::validate_messages(&api, &key, &r.dir, &[received[0].body.clone()]).await;

    // A replay from the page is delivered again, with the same message id.
    b.wait_until(
        "the test delivery in the log",
        "return !!document.querySelector('#delivery-table tr.delivery[data-state=delivered] button.replay');",
    )
    .await;
    b.click("#delivery-table button.replay").await;
    let again = got(&receivers, "ok", 2).await;
    assert_eq!(again[1].id, received[0].id);
    b.screenshot("portal-webhook-1280").await;

    // A failing receiver: its attempts appear in the open log without a reload, and the page
    // says why in one line.
    let (down_id, _) = create(&b, &hook("down"), &["alert.raised"]).await;
    b.goto(&format!("/webhooks/{down_id}")).await;
    b.wait_live().await;
    b.js("window.oldPage = true; document.querySelector('#event_type').value = 'alert.resolved';")
        .await;
    submit(&b, "test").await;
    // The form's answer redirects back here: the page drawn anew, and live again.
    b.wait_until(
        "the page again after the form",
        "return !window.oldPage && !!document.querySelector('.live-state[data-state=on]');",
    )
    .await;
    b.js("window.mustNotReload = true;").await;
    wait_for(
        "three failed attempts in the open log",
        Duration::from_secs(60),
        || {
            let b = &b;
            async move {
                let n = b
                    .js(
                        "var c = document.querySelector('#delivery-table .attempt-count'); \
                     return c ? Number(c.textContent) : 0;",
                    )
                    .await;
                (n.as_i64().unwrap_or(0) >= 3).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        b.js("return window.mustNotReload === true;").await,
        json!(true)
    );
    assert!(b.text("#delivery-table").await.contains("HTTP 500"));
    b.wait_until(
        "the cause",
        "return document.querySelector('#why').textContent.includes('HTTP 500');",
    )
    .await;
    b.screenshot("portal-deliveries-1280").await;

    // What the partner did on these pages is in the admin's audit log, as through the API.
    let (status, audit) = api.admin(Method::GET, "/api/admin/audit", None).await;
    assert_eq!(status, 200, "{audit}");
    let done: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["kind"] == "partner")
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("webhook-create", ok_id.as_str()),
        ("webhook-test", ok_id.as_str()),
        ("webhook-replay", ok_id.as_str()),
        ("webhook-create", down_id.as_str()),
        ("webhook-test", down_id.as_str()),
    ] {
        assert!(done.contains(&expected), "{expected:?} in {done:?}");
    }

    // The catalogue and the key.
    b.goto("/event-types").await;
    assert!(b.text("main").await.contains("service.health_changed"));
    b.screenshot("portal-event-types-1280").await;
    b.goto("/key").await;
    assert!(b.text("dl.key").await.contains(&key[..11]));
    b.screenshot("portal-key-1280").await;

    b.resize(PHONE).await;
    for (path, name) in [
        ("/webhooks".to_owned(), "portal-webhooks-390"),
        (format!("/webhooks/{ok_id}"), "portal-webhook-390"),
        (format!("/webhooks/{down_id}"), "portal-deliveries-390"),
        ("/event-types".to_owned(), "portal-event-types-390"),
        ("/key".to_owned(), "portal-key-390"),
    ] {
        b.goto(&path).await;
        b.screenshot(name).await;
    }
    b.resize(DESKTOP).await;
    b.goto("/webhooks").await;
    b.screenshot("portal-webhooks-1280").await;
    // No console error on any page (finish checks).
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_rotates_its_own_key_and_the_old_one_stops_after_the_grace() {
    let r = Run::begin();
    let event = format!("pr{}", r.id);
    let (_api_worker, api, _hooks_worker, key) = start(&r, &[&event]).await;

    let rotate = |key: String, body: Value| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                "/api/partner/key/rotate",
                Auth::Key(&key),
                Some(body),
            )
            .await
        }
    };
    // With a grace period both keys work; the new one is shown once, with its own prefix.
    let (status, first) = rotate(key.clone(), json!({"graceSeconds": 3600})).await;
    assert_eq!(status, 200, "{first}");
    let second_key = first["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(second_key, key);
    assert!(second_key.starts_with(first["keyPrefix"].as_str().unwrap()));
    for k in [&key, &second_key] {
        let (status, own) = api.get(Auth::Key(k), "/api/partner/key").await;
        assert_eq!(status, 200, "{own}");
        assert_eq!(
            own["events"],
            json!([event]),
            "the grants go with the partner"
        );
    }
    // Without one, every earlier key stops at once.
    let (status, again) = rotate(second_key.clone(), json!({})).await;
    assert_eq!(status, 200, "{again}");
    let third_key = again["apiKey"].as_str().unwrap().to_owned();
    for k in [&key, &second_key] {
        assert_eq!(api.get(Auth::Key(k), "/api/partner/key").await.0, 401);
    }
    assert_eq!(
        api.get(Auth::Key(&third_key), "/api/partner/key").await.0,
        200
    );
    // A bad body is refused and rotates nothing.
    let (status, _) = rotate(third_key.clone(), json!({"graceSeconds": "soon"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        api.get(Auth::Key(&third_key), "/api/partner/key").await.0,
        200
    );

    // Both rotations are audited as the partner's own, never with a key.
    let (status, audit) = api
        .admin(Method::GET, "/api/admin/audit?action=partner-rotate", None)
        .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(
        entries.iter().all(|e| e["actor"]["kind"] == "partner"),
        "{audit}"
    );
    assert!(!audit.to_string().contains(&third_key));

    // From the key page: a bad grace is refused next to its field and rotates nothing; a good
    // one shows the new key once and moves the session to it, so the page keeps working
    // after the old key ends (no grace here: it ends at once).
    let b = Browser::start(&api.base, DESKTOP).await;
    b.sign_in(&third_key).await;
    b.goto("/key").await;
    b.js("document.querySelector('#grace').type = 'text'; document.querySelector('#grace').value = 'soon';")
        .await;
    b.click("form[action='/key'] button[type=submit]").await;
    b.wait_until(
        "the refusal",
        "return !!document.querySelector('#grace-error');",
    )
    .await;
    assert!(b.text("#grace-error").await.contains("whole number"));
    let errors = b.console_errors().await;
    assert!(errors.len() == 1 && errors[0].contains("422"), "{errors:?}");
    assert_eq!(
        api.get(Auth::Key(&third_key), "/api/partner/key").await.0,
        200
    );
    b.find("#grace").await.clear().await.unwrap();
    b.find("#grace").await.send_keys("0").await.unwrap();
    b.click("form[action='/key'] button[type=submit]").await;
    b.wait_until(
        "the new key",
        "return !!document.querySelector('code#secret');",
    )
    .await;
    let fourth_key = b.text("code#secret").await;
    assert_ne!(fourth_key, third_key);
    b.screenshot("portal-key-rotated-1280").await;
    assert_eq!(
        api.get(Auth::Key(&third_key), "/api/partner/key").await.0,
        401
    );
    let (status, own) = api.get(Auth::Key(&fourth_key), "/api/partner/key").await;
    assert_eq!(status, 200, "{own}");
    b.goto("/key").await;
    assert_eq!(b.path().await, "/key", "the session moved to the new key");
    assert!(b.text("dl.key").await.contains(&fourth_key[..11]));
    b.finish().await;
}
