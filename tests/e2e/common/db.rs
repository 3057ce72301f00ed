//! The test module's PostgreSQL database: a connection, and read-model rows seeded the way the
//! projections write them.

use tokio_postgres::Client;

/// A connection to `database`, driven in the background.
pub async fn connect(database: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Forgets the services whose event ids start with `prefix`, so later runs' ingest processes do
/// not poll simulators that are gone.
pub async fn forget_services(database: &str, prefix: &str) {
    connect(database)
        .await
        .execute(
            "DELETE FROM services WHERE event_id LIKE $1 || '%'",
            &[&prefix],
        )
        .await
        .unwrap();
}

/// `event` in the catalogue, a festival named as its id.
pub async fn insert_catalogue(client: &Client, event: &str) {
    client
        .execute(
            "INSERT INTO event_catalogue (event_id, service_name, name, event_type,
                removed, version_at) VALUES ($1, 'svc', $1, 'festival', false, now())",
            &[&event],
        )
        .await
        .unwrap();
}

/// A live `event_realtime` row of `event` observed now: 1000 registered, `current` attending.
pub async fn insert_realtime(client: &Client, event: &str, current: i64) {
    client
        .execute(
            "INSERT INTO event_realtime (event_id, observed_at, fetched_at,
                total_registered, current_attendees, checked_in, checked_out,
                attendance_rate, gate_activity, alerts, status, source_partition,
                source_offset)
             VALUES ($1, now(), now(), 1000, $2, 450, 30, 0.42, '[]', '[]', 'live', 0, 0)",
            &[&event, &current],
        )
        .await
        .unwrap();
}

/// Three minutes of `event` from 2026-11-24 09:01 UTC: 2, 3 and 1 samples whose last
/// attendees are 100, 130 and 90.
pub async fn insert_three_minutes(client: &Client, event: &str) {
    for (minute, samples, last) in [(1, 2i64, 100i64), (2, 3, 130), (3, 1, 90)] {
        client
            .execute(
                "INSERT INTO event_series_minute (event_id, bucket, samples, attendees_sum,
                    attendees_max, attendees_min, registered_max, rate_sum, last_at,
                    last_attendees)
                 VALUES ($1, timestamptz '2026-11-24 09:00:00+00' + make_interval(mins => $2::int),
                    $3::bigint, $4::bigint * $3::bigint, $4::bigint, $4::bigint, 1000,
                    0.1 * $3::bigint,
                    timestamptz '2026-11-24 09:00:30+00' + make_interval(mins => $2::int),
                    $4::bigint)",
                &[&event, &minute, &samples, &last],
            )
            .await
            .unwrap();
    }
}

/// `minutes` minutes of `event` from 2030 on (in the future, so that the minute series'
/// retention leaves them alone); minute `g` holds `g` in every count.
pub async fn insert_minutes_from_2030(client: &Client, event: &str, minutes: i32) {
    client
        .execute(
            "INSERT INTO event_series_minute (event_id, bucket, samples, attendees_sum,
                attendees_max, attendees_min, registered_max, rate_sum, last_at, last_attendees)
             SELECT $1, timestamptz '2030-01-01 00:00:00+00' + make_interval(mins => g), g, g, g,
                g, 1000, 0.5, timestamptz '2030-01-01 00:00:30+00' + make_interval(mins => g), g
             FROM generate_series(1, $2::int) g",
            &[&event, &minutes],
        )
        .await
        .unwrap();
}

/// Removes `event`'s minute series.
pub async fn delete_minutes(client: &Client, event: &str) {
    client
        .execute(
            "DELETE FROM event_series_minute WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap();
}

/// Sends snapshots of `probe` until `event_realtime` has it: from then on the projections
/// consume, so nothing produced afterwards is skipped.
pub async fn wait_until_projecting(
    p: &rdkafka::producer::FutureProducer,
    codec: &muster_schemas::Codec,
    client: &Client,
    probe: &str,
) {
    super::wait_for(
        "the projection to consume",
        std::time::Duration::from_secs(90),
        || async move {
            let at = chrono::Utc::now().timestamp_millis();
            let snapshot = muster_schemas::NormalizedMetrics {
                capacity: Some(1200),
                ..super::records::normalized(probe, at, 1)
            };
            super::send(p, codec, &snapshot).await;
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM event_realtime WHERE event_id = $1",
                    &[&probe],
                )
                .await
                .ok()?
                .get(0);
            (n > 0).then_some(())
        },
    )
    .await;
}
