//! The admin's JSON routes against a real `muster api` and PostgreSQL: changing a partner's
//! grants (refused for unknown events), every management action in the audit log with its
//! filters and pages, and the dead-letter log projected from the real topic.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common;
use common::api::{Api, Auth, detail, each, start_api};
use common::{Run, Worker, db, free_port, producer, send, wait_for, worker_env};
use muster_schemas::DeadLetter;

/// Catalogue rows for `events`, as the catalogue projection writes them.
async fn catalogue(database: &str, events: &[&str]) {
    let client = db::connect(database).await;
    for e in events {
        client
            .execute(
                "INSERT INTO event_catalogue (event_id, service_name, name, event_type,
                    removed, version_at)
                 VALUES ($1, 'svc', $1, 'festival', false, now())",
                &[e],
            )
            .await
            .unwrap();
    }
}

async fn seen_events(api: &Api, key: &str) -> Vec<String> {
    let (status, body) = api.get(Auth::Key(key), "/api/partner/events").await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = each(&body["events"], "eventId")
        .into_iter()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids
}

async fn audit(api: &Api, query: &str) -> Value {
    let (status, body) = api
        .admin(Method::GET, &format!("/api/admin/audit{query}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn actions(page: &Value) -> Vec<&str> {
    each(&page["entries"], "action")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_change_what_a_key_sees_and_every_action_is_audited() {
    let (s, run, dir, _) = Run::begin().parts();
    let (e1, e2) = (format!("ga{run}"), format!("gb{run}"));
    catalogue(&s.database, &[&e1, &e2]).await;
    let env = [("MUSTER__WEBHOOKS__ALLOW_NETWORKS", "[\"127.0.0.1/32\"]")];
    let (_api_worker, api) = start_api(&dir, &env).await;

    let (status, created) = api
        .admin(
            Method::POST,
            "/api/admin/partners",
            Some(json!({"name": "Grants", "tier": "partner", "eventIds": [e1]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["partnerId"].as_str().unwrap().to_owned();
    let key = created["apiKey"].as_str().unwrap().to_owned();
    assert_eq!(seen_events(&api, &key).await, vec![e1.clone()]);
    let grants = format!("/api/admin/partners/{id}/events");

    // An unknown event is refused by name, and nothing changes.
    let unknown = format!("nope{run}");
    let (status, problem) = api
        .admin(
            Method::PUT,
            &grants,
            Some(json!({"eventIds": [e1, unknown]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(detail(&problem).contains(&unknown), "{problem}");
    assert_eq!(seen_events(&api, &key).await, vec![e1.clone()]);
    // Only the admin; an unknown partner is a 404.
    let (status, _) = api
        .call(
            Method::PUT,
            &grants,
            Auth::Key(&key),
            Some(json!({"eventIds": [e1]})),
        )
        .await;
    assert_eq!(status, 401);
    let other = format!("/api/admin/partners/{}/events", uuid::Uuid::new_v4());
    let (status, _) = api
        .admin(Method::PUT, &other, Some(json!({"eventIds": [e1]})))
        .await;
    assert_eq!(status, 404);

    // Granting the second event: the key sees it at once.
    let (status, changed) = api
        .admin(Method::PUT, &grants, Some(json!({"eventIds": [e1, e2]})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["added"], json!([e2]));
    assert_eq!(changed["removed"], json!([]));
    let mut both = vec![e1.clone(), e2.clone()];
    both.sort();
    assert_eq!(seen_events(&api, &key).await, both);
    // The same list again changes nothing (and records nothing).
    let (status, same) = api
        .admin(
            Method::PUT,
            &grants,
            Some(json!({"eventIds": [e2, e1, e2]})),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(
        (same["added"].clone(), same["removed"].clone()),
        (json!([]), json!([]))
    );
    // Revoking the first.
    let (status, changed) = api
        .admin(Method::PUT, &grants, Some(json!({"eventIds": [e2]})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["removed"], json!([e1]));
    assert_eq!(seen_events(&api, &key).await, vec![e2.clone()]);

    // The partner's own webhook changes are audited with its key's prefix.
    let (status, hook) = api
        .call(
            Method::POST,
            "/api/partner/webhooks",
            Auth::Key(&key),
            Some(json!({"url": "http://127.0.0.1:9/hook", "eventTypes": ["alert.raised"]})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/partner/webhooks/{hook_id}"),
            Auth::Key(&key),
            None,
        )
        .await;
    assert_eq!(status, 204);

    let (status, _) = api
        .admin(
            Method::POST,
            &format!("/api/admin/partners/{id}/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .admin(Method::DELETE, &format!("/api/admin/partners/{id}"), None)
        .await;
    assert_eq!(status, 204);

    // Newest first, each once.
    let all = audit(&api, "").await;
    assert_eq!(
        actions(&all),
        [
            "partner-revoke",
            "partner-rotate",
            "webhook-delete",
            "webhook-create",
            "partner-revoke-grant",
            "partner-grant",
            "partner-create",
        ],
        "{all}"
    );
    let entries = all["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["at"].is_string()));
    let grant = &entries[5];
    assert_eq!(grant["subject"], id.as_str());
    assert_eq!(grant["actor"], json!({"kind": "admin"}));
    assert_eq!(grant["details"]["eventIds"], json!([e2]));
    let created_hook = &entries[3];
    assert_eq!(created_hook["subject"], hook_id.as_str());
    assert_eq!(created_hook["actor"]["kind"], "partner");
    assert_eq!(created_hook["actor"]["partnerId"], id.as_str());
    assert_eq!(
        created_hook["actor"]["keyPrefix"],
        created["keyPrefix"].as_str().unwrap()
    );
    assert!(
        !created_hook.to_string().contains("whsec_"),
        "no secret in the log"
    );

    // Filters: by action, by actor, by time; pages by `before`.
    assert_eq!(
        actions(&audit(&api, "?action=partner-grant").await),
        ["partner-grant"]
    );
    let by_partner = audit(&api, &format!("?actor={id}")).await;
    assert_eq!(actions(&by_partner), ["webhook-delete", "webhook-create"]);
    assert_eq!(actions(&audit(&api, "?actor=admin").await).len(), 5);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(actions(&audit(&api, &format!("?from={later}")).await).is_empty());
    assert_eq!(
        actions(&audit(&api, &format!("?to={later}")).await).len(),
        7
    );
    let first = audit(&api, "?limit=3").await;
    assert_eq!(actions(&first).len(), 3);
    let before = first["nextBefore"].as_i64().expect("a next page");
    let second = audit(&api, &format!("?limit=3&before={before}")).await;
    assert_eq!(
        actions(&second),
        ["webhook-create", "partner-revoke-grant", "partner-grant"]
    );
    let last = audit(&api, &format!("?limit=3&before={}", second["nextBefore"])).await;
    assert_eq!(actions(&last), ["partner-create"]);
    assert!(last["nextBefore"].is_null());
    // Bad filters are 400s that say why; the log is the admin's only.
    for bad in [
        "?actor=someone",
        "?action=partner-dance",
        "?limit=0",
        "?color=red",
    ] {
        let (status, problem) = api
            .admin(Method::GET, &format!("/api/admin/audit{bad}"), None)
            .await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }
    assert_eq!(api.get(Auth::None, "/api/admin/audit").await.0, 401);
}

fn letter(stage: &str, event: &str, offset: i64, payload: &[u8]) -> DeadLetter {
    DeadLetter {
        event_id: Some(event.to_owned()),
        stage: stage.to_owned(),
        error: format!("{stage} could not read it"),
        source_topic: common::topic::<muster_schemas::RawSnapshot>(),
        source_partition: 0,
        source_offset: offset,
        payload: payload.to_vec(),
        failed_at: chrono::Utc::now().timestamp_millis(),
    }
}

async fn dead_letters(api: &Api, query: &str) -> Value {
    let (status, body) = api
        .admin(
            Method::GET,
            &format!("/api/admin/dead-letters{query}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_topic_is_projected_for_the_admin_once_per_record() {
    let (s, run, dir, codec) = Run::begin().parts();
    let (_api_worker, api) = start_api(&dir, &[] as &[(&str, &str)]).await;
    let mut env = worker_env(&format!("d{run}"), free_port());
    env.push(("MUSTER__KAFKA__AUTO_OFFSET_RESET", "earliest".to_owned()));
    let _project = Worker::start(
        "project",
        &["project", "--only", "dead_letter_log"],
        &env,
        &dir,
    );
    let (a, b) = (format!("da{run}"), format!("db{run}"));
    let garbage = b"<script>alert(1)</script>\0\xff".to_vec();
    let p = producer(&s);
    // One at a time, each waited for: records of different events may sit in different
    // partitions, and "newest first" is the order they were projected in.
    let projected = |n: usize| {
        let api = &api;
        async move {
            wait_for(
                "the dead letters projected",
                Duration::from_secs(90),
                || async move {
                    let page = dead_letters(api, "").await;
                    (page["deadLetters"].as_array()?.len() >= n).then_some(page)
                },
            )
            .await
        }
    };
    send(&p, &codec, &letter("normalize", &a, 7, &garbage)).await;
    // Published twice (publishing is at least once): kept once.
    send(&p, &codec, &letter("normalize", &a, 7, &garbage)).await;
    projected(1).await;
    send(&p, &codec, &letter("alerts", &b, 8, b"{}")).await;
    projected(2).await;
    send(&p, &codec, &letter("normalize", &b, 9, b"[1,")).await;
    let all = projected(3).await;
    let rows = all["deadLetters"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    // Newest first, with where each came from and its bytes, base64.
    assert_eq!(
        each(&all["deadLetters"], "stage"),
        ["normalize", "alerts", "normalize"]
    );
    let oldest = &rows[2];
    assert_eq!(oldest["eventId"], a.as_str());
    assert_eq!(oldest["reason"], "normalize could not read it");
    assert_eq!(
        oldest["sourceTopic"],
        common::topic::<muster_schemas::RawSnapshot>().as_str()
    );
    assert_eq!(
        (
            oldest["sourcePartition"].as_i64(),
            oldest["sourceOffset"].as_i64()
        ),
        (Some(0), Some(7))
    );
    assert_eq!(oldest["payloadLength"], garbage.len());
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(oldest["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, garbage);

    // Filters by stage and event, and pages.
    let normalize = dead_letters(&api, "?stage=normalize").await;
    assert_eq!(
        each(&normalize["deadLetters"], "eventId"),
        [b.as_str(), a.as_str()]
    );
    let of_b = dead_letters(&api, &format!("?eventId={b}")).await;
    assert_eq!(each(&of_b["deadLetters"], "stage"), ["normalize", "alerts"]);
    let both = dead_letters(&api, &format!("?eventId={b}&stage=alerts")).await;
    assert_eq!(each(&both["deadLetters"], "stage"), ["alerts"]);
    let first = dead_letters(&api, "?limit=2").await;
    let next = first["nextBefore"].as_i64().expect("a next page");
    let rest = dead_letters(&api, &format!("?limit=2&before={next}")).await;
    assert_eq!(each(&rest["deadLetters"], "eventId"), [a.as_str()]);
    assert!(rest["nextBefore"].is_null());
    assert_eq!(api.get(Auth::None, "/api/admin/dead-letters").await.0, 401);
    let (status, _) = api
        .admin(Method::GET, "/api/admin/dead-letters?limit=501", None)
        .await;
    assert_eq!(status, 400);
}
