//! `muster bench api`: requests/s and latency of the partner attendance endpoint (a valid key,
//! the key lookup, the rate limiter, two queries on the projections, JSON) against a warp
//! hello-world served by the same process, both driven by the same keep-alive load loop on
//! loopback for the same time.

use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::Shutdown;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds each side is driven for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

/// What one side of the comparison did.
struct Load {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        Duration::from_micros(self.latencies[i - 1] as u64)
    }
}

/// Drives `url` with `connections` loops for `seconds`, counting only 200s as requests.
async fn drive(url: &str, key: Option<&str>, connections: usize, seconds: u64) -> Load {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("an HTTP client");
    // Warm up the connections and the server's caches.
    for _ in 0..connections {
        let mut req = client.get(url);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let _ = req.send().await.and_then(|r| r.error_for_status());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, key) = (client.clone(), url.to_owned(), key.map(str::to_owned));
        tasks.spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0usize, 0usize, Vec::new());
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut req = client.get(&url);
                if let Some(k) = &key {
                    req = req.header("x-api-key", k);
                }
                let res = match req.send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if res {
                    ok += 1;
                    latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    errors += 1;
                }
            }
            (ok, errors, latencies)
        });
    }
    let mut load = Load {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    while let Some(r) = tasks.join_next().await {
        let (ok, errors, latencies) = r.expect("a load task");
        load.requests += ok;
        load.errors += errors;
        load.latencies.extend(latencies);
    }
    load.elapsed = started.elapsed();
    load.latencies.sort_unstable();
    load
}

/// A key of a new partner `bench` of `tier`, granted `event`, made through the API at `base`.
pub(super) async fn partner_key(
    base: &str,
    admin: &str,
    tier: &str,
    event: &str,
) -> anyhow::Result<String> {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/admin/partners"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "bench", "tier": tier, "eventIds": [event]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(created["apiKey"]
        .as_str()
        .context("the partner answer has no apiKey")?
        .to_owned())
}

/// Removes what [`seed`] wrote, and revokes the bench partner's key for `event`.
pub(super) async fn unseed(pool: &deadpool_postgres::Pool, event: &str) -> anyhow::Result<()> {
    let client = pool.get().await?;
    for table in ["event_series_minute", "event_realtime", "event_catalogue"] {
        client
            .execute(
                &format!("DELETE FROM {table} WHERE event_id = $1"),
                &[&event],
            )
            .await?;
    }
    client
        .execute(
            "UPDATE partners SET revoked_at = now() WHERE name = 'bench' AND $1 = ANY(event_ids)",
            &[&event],
        )
        .await?;
    Ok(())
}

/// One live event in the projections: catalogue, latest numbers, the last hour by minute.
pub(super) async fn seed(pool: &deadpool_postgres::Pool, event: &str) -> anyhow::Result<()> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type, capacity,
                removed, version_at) VALUES ($1, 'bench', $1, 'festival', 5000, false, now())",
            &[&event],
        )
        .await?;
    client
        .execute(
            "INSERT INTO event_realtime (event_id, observed_at, fetched_at, total_registered,
                current_attendees, checked_in, checked_out, attendance_rate, gate_activity,
                alerts, status, source_partition, source_offset, capacity)
             VALUES ($1, now(), now(), 4000, 2500, 2600, 100, 0.625, '[]', '[]', 'live', 0, 0,
                5000)",
            &[&event],
        )
        .await?;
    // A full hour by minute, as a live event has.
    client
        .execute(
            "INSERT INTO event_series_minute (event_id, bucket, samples, attendees_sum,
                attendees_max, attendees_min, registered_max, rate_sum, last_at, last_attendees)
             SELECT $1, date_trunc('minute', now()) - make_interval(mins => m), 4,
                    4 * (2000 + m), 2000 + m, 2000 + m, 4000, 4 * (2000 + m) / 4000.0,
                    now() - make_interval(mins => m), 2000 + m
             FROM generate_series(0, 59) AS m",
            &[&event],
        )
        .await?;
    Ok(())
}

pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let env = cfg.env(Shutdown::new())?;
    let pool = env.pool.clone();
    crate::roles::migrate(&pool, &cfg.processors).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let event = format!("bench-api-{run}");
    seed(&pool, &event)
        .await
        .context("seeding the projections")?;

    // The real routes, in this process, with limits out of the way: the limiter still runs on
    // every request, but never refuses.
    let admin = format!("bench-{}", muster_runtime::unique_suffix().repeat(2));
    cfg.api.admin_token = Some(muster_runtime::secrets::Secret::new(admin.clone()));
    cfg.api.rate_limits.premium_per_second = u32::MAX / 2;
    cfg.api.rate_limits.premium_burst = u32::MAX / 2;
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_addr = api_listener.local_addr()?;
    let state = crate::app_state(&cfg, &env).await?;
    let stop = Shutdown::new();
    let routes = muster_api::routes(cfg.api.clone(), state);
    let api = tokio::spawn(
        warp::serve(routes)
            .incoming(api_listener)
            .graceful({
                let stop = stop.clone();
                async move { stop.cancelled().await }
            })
            .run(),
    );
    let hello_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hello_addr = hello_listener.local_addr()?;
    let hello = tokio::spawn(
        warp::serve(warp::Filter::map(warp::path!("hello"), || "hello, world"))
            .incoming(hello_listener)
            .graceful({
                let stop = stop.clone();
                async move { stop.cancelled().await }
            })
            .run(),
    );

    let key = partner_key(&format!("http://{api_addr}"), &admin, "premium", &event).await?;

    let (secs, conns) = (args.seconds, args.connections);
    eprintln!("warp hello-world: {conns} connections for {secs} s ...");
    let base = drive(&format!("http://{hello_addr}/hello"), None, conns, secs).await;
    eprintln!("attendance endpoint: {conns} connections for {secs} s ...");
    let url = format!("http://{api_addr}/api/partner/events/{event}/attendance");
    let att = drive(&url, Some(&key), conns, secs).await;
    stop.cancel();
    let _ = tokio::join!(api, hello);
    unseed(&pool, &event).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{conns} keep-alive connections, {secs} s each, loopback, same process");
    for (name, l) in [("warp hello-world", &base), ("partner attendance", &att)] {
        println!(
            "  {name:<20} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            l.rate(),
            ms(l.percentile(0.50)),
            ms(l.percentile(0.99)),
            l.errors
        );
    }
    println!(
        "  attendance / hello-world: {:.1} % of the requests/s, p99 {:.1}x",
        100.0 * att.rate() / base.rate().max(1e-9),
        att.percentile(0.99).as_secs_f64() / base.percentile(0.99).as_secs_f64().max(1e-9)
    );
    if att.errors > 0 {
        anyhow::bail!("{} attendance requests failed", att.errors);
    }
    Ok(())
}
