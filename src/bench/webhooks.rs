//! `muster bench webhooks`: signed deliveries/s from the queue in PostgreSQL to a loopback
//! receiver (claim with SKIP LOCKED as slots free, open the sealed secret, sign, POST, record
//! what finished in one statement), against the same receiver hit by a plain unsigned POST loop
//! with the same bodies and the same concurrency, in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_webhooks::dispatch::Dispatcher;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Deliveries through each side.
    #[arg(long, default_value_t = 5_000)]
    deliveries: usize,
    /// Events they are spread over (first attempts of one event go one at a time, in order).
    #[arg(long, default_value_t = 200)]
    events: usize,
    /// Requests in flight at once, on both sides.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let pool = cfg.database.pool()?;
    crate::roles::migrate(&pool, &cfg.processors).await?;
    let secrets = cfg.security.secrets()?;
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let receiver = warp::Filter::map(
        warp::Filter::and(warp::post(), warp::body::bytes()),
        move |_body: warp::hyper::body::Bytes| {
            counter.fetch_add(1, Ordering::Relaxed);
            ""
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(warp::serve(receiver).incoming(listener).run());
    let url = format!("http://{addr}/hook");

    let run = format!("{:08x}", rand::random::<u32>());
    let endpoint = format!("ep_bench_{run}");
    let secret = muster_runtime::signature::generate_secret();
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, event_types, secret_enc)
             VALUES ($1, 'bench', $2, ARRAY['alert.raised'], $3)",
            &[&endpoint, &url, &secrets.encrypt(secret.as_bytes())],
        )
        .await?;
    let n = args.deliveries;
    let body = |i: usize| {
        serde_json::json!({
            "type": "alert.raised",
            "timestamp": chrono::Utc::now(),
            "data": {"eventId": format!("bench-{}", i % args.events), "sequence": i / args.events + 1,
                     "alertId": format!("bench:gate-down:G{i}@0"), "kind": "gate-down",
                     "severity": "warning", "message": "gate down"},
        })
    };
    let payloads: Vec<serde_json::Value> = (0..n).map(body).collect();

    // Baseline: the same bodies, unsigned, straight from memory.
    eprintln!(
        "plain POST loop: {n} requests, {} at once ...",
        args.concurrency
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let payloads = Arc::new(payloads);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (http, url, next, payloads) =
            (http.clone(), url.clone(), next.clone(), payloads.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= payloads.len() {
                    break;
                }
                let res = http.post(&url).json(&payloads[i]).send().await;
                if !res.is_ok_and(|r| r.status().is_success()) {
                    anyhow::bail!("the receiver refused a plain POST");
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let plain = started.elapsed();

    // Queue the same deliveries, then let a dispatcher drain them.
    let (ids, events, seqs): (Vec<String>, Vec<String>, Vec<i64>) = (0..n)
        .map(|i| {
            (
                format!("dlv_bench_{run}_{i}"),
                format!("bench-{run}-{}", i % args.events),
                (i / args.events + 1) as i64,
            )
        })
        .fold((vec![], vec![], vec![]), |mut acc, (a, b, c)| {
            acc.0.push(a);
            acc.1.push(b);
            acc.2.push(c);
            acc
        });
    client
        .execute(
            "INSERT INTO webhook_deliveries (delivery_id, message_id, endpoint_id, event_id, seq,
                event_type, occurred_at, payload, state, next_attempt_at)
             SELECT d, d, $1, e, s, 'alert.raised', now(), p, 'pending', now() + interval '1 hour'
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::jsonb[]) AS x(d, e, s, p)",
            &[&endpoint, &ids, &events, &seqs, &payloads.as_slice()],
        )
        .await?;
    cfg.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
    cfg.webhooks.concurrency = args.concurrency;
    let dispatcher = Dispatcher::new(cfg.webhooks.clone(), pool.clone(), secrets)?;
    eprintln!(
        "dispatcher: {n} signed deliveries, {} at once ...",
        args.concurrency
    );
    let before = hits.load(Ordering::Relaxed);
    // Due now: released in one statement so the clock starts with every delivery ready.
    client
        .execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1",
            &[&endpoint],
        )
        .await?;
    let started = Instant::now();
    dispatcher.drain(n).await?;
    let signed = started.elapsed();
    let delivered: i64 = client
        .query_one(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = 'delivered'",
            &[&endpoint],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        delivered as usize == n && hits.load(Ordering::Relaxed) - before == n as u64,
        "{delivered} of {n} deliveries delivered"
    );
    client
        .execute(
            "DELETE FROM webhook_endpoints WHERE endpoint_id = $1",
            &[&endpoint],
        )
        .await
        .context("cleaning up")?;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{n} deliveries over {} events, {} in flight, loopback receiver",
        args.events, args.concurrency
    );
    println!("  plain unsigned POST loop   {:>9.0} req/s", rate(plain));
    println!(
        "  muster webhooks dispatcher {:>9.0} deliveries/s (claim, sign, POST, record)",
        rate(signed)
    );
    println!(
        "  dispatcher / plain loop: {:.1} %",
        100.0 * rate(signed) / rate(plain)
    );
    Ok(())
}
