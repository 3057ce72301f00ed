//! `muster bench api`: requests/s and latency of the partner attendance endpoint (a valid key,
//! the key lookup, the rate limiter, the realtime row and the last hour by minute from the
//! in-memory view, JSON) and of the dashboard over `--dashboard-events` events, against a warp
//! hello-world served by the same process, all driven by the same keep-alive load loop on
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
    /// Events seeded for the dashboard side (`GET /api/dashboard` as the admin, the default
    /// 24 hours); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    dashboard_events: u32,
    /// Concurrent connections driving the dashboard (a heavier page than attendance).
    #[arg(long, default_value_t = 4)]
    dashboard_connections: usize,
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

/// Drives `url` with `connections` loops for `seconds`, counting only 200s as requests; each
/// request carries `header` (name, value) if given.
async fn drive(url: &str, header: Option<(&str, &str)>, connections: usize, seconds: u64) -> Load {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("an HTTP client");
    // Warm up the connections and the server's caches.
    for _ in 0..connections {
        let mut req = client.get(url);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let _ = req.send().await.and_then(|r| r.error_for_status());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url) = (client.clone(), url.to_owned());
        let header = header.map(|(n, v)| (n.to_owned(), v.to_owned()));
        tasks.spawn(async move {
            let (mut ok, mut errors, mut latencies) = (0usize, 0usize, Vec::new());
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut req = client.get(&url);
                if let Some((name, value)) = &header {
                    req = req.header(name, value);
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

/// A key of a new partner `bench` of `tier`, granted `events`, made through the API at `base`.
pub(super) async fn partner_key(
    base: &str,
    admin: &str,
    tier: &str,
    events: &[String],
) -> anyhow::Result<String> {
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/admin/partners"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "bench", "tier": tier, "eventIds": events}))
        .send()
        .await?
        .error_for_status()
        .context("creating the bench's partner")?
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

/// `n` live events named `{prefix}-{i}` for the dashboard: catalogue, latest numbers, the last
/// hour by minute and the last day by hour (what its 24-hour view reads).
async fn seed_many(pool: &deadpool_postgres::Pool, prefix: &str, n: u32) -> anyhow::Result<()> {
    let client = pool.get().await?;
    let n = i32::try_from(n).context("--dashboard-events is too large")?;
    client
        .execute(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type, capacity,
                removed, version_at)
             SELECT $1 || '-' || i, 'bench', 'Bench event ' || i,
                    (ARRAY['festival', 'conference', 'exhibition'])[1 + i % 3], 5000, false, now()
             FROM generate_series(1, $2) AS i",
            &[&prefix, &n],
        )
        .await?;
    client
        .execute(
            "INSERT INTO event_realtime (event_id, observed_at, fetched_at, total_registered,
                current_attendees, checked_in, checked_out, attendance_rate, gate_activity,
                alerts, status, source_partition, source_offset, capacity)
             SELECT $1 || '-' || i, now(), now(), 4000, 1000 + i % 3000, 2600, 100,
                    (1000 + i % 3000) / 4000.0, '[]', '[]', 'live', 0, 0, 5000
             FROM generate_series(1, $2) AS i",
            &[&prefix, &n],
        )
        .await?;
    for (table, unit, count) in [
        ("event_series_minute", "mins", 60),
        ("event_series_hour", "hours", 24),
    ] {
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (event_id, bucket, samples, attendees_sum,
                        attendees_max, attendees_min, registered_max, rate_sum, last_at,
                        last_attendees)
                     SELECT $1 || '-' || i,
                            date_trunc('{}', now()) - make_interval({unit} => m), 4,
                            4 * (1000 + m), 1000 + m, 1000 + m, 4000, 4 * (1000 + m) / 4000.0,
                            now() - make_interval({unit} => m), 1000 + m
                     FROM generate_series(1, $2) AS i, generate_series(0, {}) AS m",
                    if unit == "mins" { "minute" } else { "hour" },
                    count - 1
                ),
                &[&prefix, &n],
            )
            .await?;
    }
    Ok(())
}

/// Removes what [`seed_many`] wrote.
async fn unseed_many(pool: &deadpool_postgres::Pool, prefix: &str) -> anyhow::Result<()> {
    let client = pool.get().await?;
    for table in [
        "event_series_minute",
        "event_series_hour",
        "event_realtime",
        "event_catalogue",
    ] {
        client
            .execute(
                &format!("DELETE FROM {table} WHERE event_id LIKE $1 || '-%'"),
                &[&prefix],
            )
            .await?;
    }
    Ok(())
}

/// How many hot reads `metrics` counted as answered from memory and from PostgreSQL.
fn reads_by_source(metrics: &str, read: &str) -> (u64, u64) {
    let count = |from: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("muster_api_reads_total{"))
            .filter(|l| {
                l.contains(&format!("read=\"{read}\"")) && l.contains(&format!("from=\"{from}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (count("memory"), count("postgres"))
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
    let many = format!("bench-dash-{run}");
    if args.dashboard_events > 0 {
        seed_many(&pool, &many, args.dashboard_events)
            .await
            .context("seeding the dashboard's events")?;
    }

    // The real routes, in this process, with limits out of the way: the limiter still runs on
    // every request, but never refuses.
    let admin = format!("bench-{}", muster_runtime::unique_suffix().repeat(2));
    cfg.api.admin_token = Some(muster_runtime::secrets::Secret::new(admin.clone()));
    cfg.api.rate_limits.premium_per_second = u32::MAX / 2;
    cfg.api.rate_limits.premium_burst = u32::MAX / 2;
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_addr = api_listener.local_addr()?;
    let state = crate::app_state(&cfg, &env).await?;
    let feed = state.feed.clone();
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

    let key = partner_key(
        &format!("http://{api_addr}"),
        &admin,
        "premium",
        std::slice::from_ref(&event),
    )
    .await?;
    // The view loads when the feed's listener starts; the bench measures it, not PostgreSQL.
    let loading = Instant::now();
    while !feed.memory().is_fresh() {
        anyhow::ensure!(
            loading.elapsed() < Duration::from_secs(60),
            "the API's in-memory view did not load within 60 s (see the log)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (secs, conns) = (args.seconds, args.connections);
    eprintln!("warp hello-world: {conns} connections for {secs} s ...");
    let base = drive(&format!("http://{hello_addr}/hello"), None, conns, secs).await;
    eprintln!("attendance endpoint: {conns} connections for {secs} s ...");
    let url = format!("http://{api_addr}/api/partner/events/{event}/attendance");
    let att = drive(&url, Some(("x-api-key", &key)), conns, secs).await;
    let dash = if args.dashboard_events > 0 {
        let c = args.dashboard_connections;
        eprintln!(
            "dashboard of {} events: {c} connections for {secs} s ...",
            args.dashboard_events
        );
        let bearer = format!("Bearer {admin}");
        let url = format!("http://{api_addr}/api/dashboard");
        Some(drive(&url, Some(("authorization", &bearer)), c, secs).await)
    } else {
        None
    };
    let (from_memory, from_postgres) = reads_by_source(&env.metrics.render(), "attendance");
    stop.cancel();
    let _ = tokio::join!(api, hello);
    unseed(&pool, &event).await?;
    unseed_many(&pool, &many).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{conns} keep-alive connections, {secs} s each, loopback, same process");
    let mut sides = vec![("warp hello-world", &base), ("partner attendance", &att)];
    if let Some(d) = &dash {
        sides.push(("dashboard", d));
    }
    for (name, l) in sides {
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
    println!("  attendance answered from memory: {from_memory}, from PostgreSQL: {from_postgres}");
    if let Some(d) = &dash {
        println!(
            "  dashboard of {} events ({} connections): p99 {:.1} ms",
            args.dashboard_events,
            args.dashboard_connections,
            ms(d.percentile(0.99))
        );
    }
    let failed = att.errors + dash.as_ref().map_or(0, |d| d.errors);
    if failed > 0 {
        anyhow::bail!("{failed} requests failed");
    }
    Ok(())
}
