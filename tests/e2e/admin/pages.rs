//! The admin's console in a real browser against a real stack (simulator, ingest, processors,
//! projections, API): a service registered through the form (an unhealthy one refused with
//! its cause next to the form), a partner created and granted a second event that its own
//! overview then shows, a malformed upstream body on the dead-letter page with its reason and
//! its bytes shown as text, and those actions in the audit log. Screenshots of each page at
//! 1280 and 390 px.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use common::api::ADMIN;
use common::browser::{Browser, DESKTOP, PHONE};
use common::stack::Stack;
use common::{Worker, free_port, wait_for, worker_env};

/// Sets a form field's value (a long JSON text is slow to type) and submits its form.
async fn submit(b: &Browser, field: &str, value: &str) {
    b.client
        .execute(
            "const f = document.querySelector(arguments[0]); f.value = arguments[1]; f.form.requestSubmit();",
            vec![json!(field), json!(value)],
        )
        .await
        .unwrap();
}

/// Reloads `path` until `script` returns true (the read models fill in the background).
async fn reload_until(b: &Browser, what: &str, path: &str, script: &str) {
    wait_for(what, Duration::from_secs(120), || async move {
        b.goto(path).await;
        b.js(script).await.as_bool().filter(|ok| *ok)
    })
    .await;
}

/// Screenshots of the page at `path` at both widths, as `docs/<name>-1280.png` and `-390`.
async fn screenshots(b: &Browser, name: &str, path: &str) {
    for (size, width) in [(DESKTOP, 1280), (PHONE, 390)] {
        b.resize(size).await;
        b.goto(path).await;
        b.screenshot(&format!("{name}-{width}")).await;
    }
    b.resize(DESKTOP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_registers_grants_and_reads_dead_letters_and_the_audit_log() {
    // Event 1 healthy, 2 unhealthy, 3 sending malformed bodies.
    let stack = Stack::start(&[
        "--events",
        "3",
        "--unhealthy",
        "1",
        "--malformed",
        "1",
        "--interval",
        "1",
    ])
    .await;
    let group = format!("t{}", stack.run);
    let env = |ops: u16| {
        let mut env = worker_env(&group, ops);
        env.push(("MUSTER__PROJECTIONS__BATCH_MAX_WAIT", "100ms".to_owned()));
        env
    };
    let _process = Worker::start("process", &["process"], &env(free_port()), &stack.dir);
    let _project = Worker::start("project", &["project"], &env(free_port()), &stack.dir);
    let _ingest = stack.start_ingest(["ingest"]).await;
    let (good, unhealthy, bad) = (stack.event(1), stack.event(2), stack.event(3));

    let b = Browser::start(&stack.api.base, DESKTOP).await;
    b.sign_in(ADMIN).await;

    // The unhealthy service is refused, with the health check's cause next to the form.
    b.goto("/services").await;
    let refused = stack.registration(2).await;
    submit(&b, "#registration", &refused.to_string()).await;
    b.wait_until(
        "the refusal next to the form",
        "return !!document.querySelector('main .error');",
    )
    .await;
    let error = b.text(".error").await;
    assert!(error.contains("health check"), "{error}");
    // The refusal is answered 422, which the console notes; nothing else.
    let logged = b.console_errors().await;
    assert!(logged.iter().all(|e| e.contains("422")), "{logged:#?}");
    let (status, _) = stack.admin_get(&unhealthy).await;
    assert_eq!(status, 404, "nothing saved");
    // The form keeps what was sent.
    let kept = b
        .js("return document.querySelector('#registration').value;")
        .await;
    assert!(kept.as_str().unwrap().contains(&unhealthy), "{kept}");

    // The healthy one and the malformed one register; each secret is shown once.
    for n in [1, 3] {
        b.goto("/services").await;
        let body: Value = stack.registration(n).await;
        submit(&b, "#registration", &body.to_string()).await;
        b.wait_until(
            "the registration's outcome",
            "return !!document.querySelector('#secret');",
        )
        .await;
        let secret = b
            .js("return document.querySelector('#secret').value;")
            .await;
        assert!(!secret.as_str().unwrap().is_empty());
    }
    assert_eq!(stack.admin_get(&good).await.0, 200);
    assert_eq!(stack.admin_get(&bad).await.0, 200);

    // A partner granted the first event; its key shown once.
    b.goto("/partners").await;
    b.find("#name")
        .await
        .send_keys("Festival Co")
        .await
        .unwrap();
    b.click(&format!("input[name=event][value='{good}']")).await;
    b.click("form[action='/partners'] button[type=submit]")
        .await;
    b.wait_until("the new key", "return !!document.querySelector('#key');")
        .await;
    let key = b.js("return document.querySelector('#key').value;").await;
    let key = key.as_str().unwrap().to_owned();
    assert!(key.starts_with("mk_"), "{key}");
    let partner_page = b
        .js("return document.querySelector('main p a').getAttribute('href');")
        .await
        .as_str()
        .unwrap()
        .to_owned();

    // Granting the second (malformed) event on the partner's page.
    b.goto(&partner_page).await;
    b.click(&format!("input[name=event][value='{bad}']")).await;
    b.click("form[action$='/grants'] button[type=submit]").await;
    b.wait_until(
        "the partner page with both grants",
        &format!(
            "return location.pathname === '{partner_page}' && document.querySelector('.facts').textContent.includes('{bad}');"
        ),
    )
    .await;

    // The partner's own overview shows both events.
    let p = Browser::start(&stack.api.base, DESKTOP).await;
    p.sign_in(&key).await;
    let both = format!(
        "const ids = [...document.querySelectorAll('#rows th a')].map(a => decodeURIComponent(a.getAttribute('href').slice(8)));
         return ids.includes('{good}') && ids.includes('{bad}') && ids.length === 2;"
    );
    reload_until(&p, "the partner's overview with both events", "/", &both).await;
    p.finish().await;

    // The malformed body is on the dead-letter page, with its reason, as text.
    let dead = format!("/dead-letters?stage=normalize&event={bad}");
    reload_until(
        &b,
        "the malformed body's dead letter",
        &dead,
        "return [...document.querySelectorAll('.dead-letter pre.bytes')].some(p => p.textContent.includes('upstream exploded'));",
    )
    .await;
    let reason = b.text(".dead-letter .reason").await;
    assert!(!reason.is_empty());
    let injected = b
        .js("return document.querySelectorAll('.dead-letter body, .dead-letter html').length;")
        .await;
    assert_eq!(injected, json!(0), "the bytes are never markup");
    assert!(b.text(".dead-letter h2").await.contains(&bad));

    // The audit log lists the actions, filterable.
    b.goto("/audit").await;
    let actions = b
        .js("return [...document.querySelectorAll('table.audit tbody tr td:nth-child(3)')].map(t => t.textContent);")
        .await;
    let actions: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "partner-grant",
            "partner-create",
            "service-register",
            "service-register"
        ]
    );
    b.goto("/audit?action=partner-grant").await;
    let rows = b
        .js("return document.querySelectorAll('table.audit tbody tr').length;")
        .await;
    assert_eq!(rows, json!(1));

    // Removing the malformed service from its page: gone, and audited.
    b.goto(&format!("/services/{bad}")).await;
    b.click("form[action$='/remove'] button[type=submit]").await;
    b.wait_until(
        "the list after removal",
        "return location.pathname === '/services';",
    )
    .await;
    assert_eq!(stack.admin_get(&bad).await.0, 404);
    b.goto("/audit?action=service-remove").await;
    assert!(b.text("table.audit tbody").await.contains(&bad));

    // The console speaks Korean too.
    b.goto("/partners").await;
    b.switch_language("ko").await;
    assert_eq!(b.text("h1").await, "파트너");
    b.switch_language("en").await;

    screenshots(&b, "admin-services", "/services").await;
    screenshots(&b, "admin-partners", "/partners").await;
    screenshots(&b, "admin-partner", &partner_page).await;
    screenshots(&b, "admin-audit", "/audit").await;
    screenshots(&b, "admin-dead-letters", &dead).await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_may_not_open_the_console_and_forms_need_their_token() {
    let stack = Stack::start(&["--events", "1"]).await;
    let key = stack.api.partner_key("partner", &[]).await;
    let b = Browser::start(&stack.api.base, DESKTOP).await;
    b.sign_in(&key).await;
    for page in ["/partners", "/audit", "/dead-letters"] {
        b.goto(page).await;
        let title = b.text("h1").await;
        assert!(title.starts_with("403"), "{page}: {title}");
    }
    let nav = b
        .js("return document.querySelector('.top nav').textContent;")
        .await;
    assert!(!nav.as_str().unwrap().contains("Partners"), "{nav}");
    let logged = b.console_errors().await;
    assert!(logged.iter().all(|e| e.contains("403")), "{logged:#?}");
    b.finish().await;

    // A form posted without the session's token changes nothing.
    let res = stack
        .api
        .http
        .post(format!("{}/partners", stack.api.base))
        .form(&[("name", "X"), ("tier", "partner")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let (_, all) = stack
        .api
        .admin(reqwest::Method::GET, "/api/admin/partners", None)
        .await;
    assert_eq!(all["partners"].as_array().map(Vec::len), Some(1), "{all}");
}
