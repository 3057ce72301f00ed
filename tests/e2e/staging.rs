//! Batches written like `COPY` (staged into a temporary table, merged with one statement per
//! table), applied through the runtime's applier against the real PostgreSQL: partials of one
//! key within a batch and across batches merge as the in-memory rules say, an older snapshot
//! never replaces a newer one, and a batch the refusal bisection stages several times in one
//! transaction still counts each record once. The pool has one connection, so every batch
//! reuses the same session's temporary tables.

use crate::common;

use common::records::normalized;
use common::{Run, db};
use muster_projections::Applier;
use muster_projections::series::attendance_buckets;
use muster_runtime::batch::InRecord;
use muster_schemas::{Codec, NormalizedMetrics};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

struct Setup {
    codec: Codec,
    pool: deadpool_postgres::Pool,
    client: tokio_postgres::Client,
    next_offset: i64,
}

impl Setup {
    async fn new(codec: Codec, database: &str) -> Self {
        let mut client = db::connect(database).await;
        muster_projections::migrate(&mut client).await.unwrap();
        codec.register::<NormalizedMetrics>().await.unwrap();
        let pool = muster_runtime::DatabaseConfig {
            url: database.to_owned(),
            pool_size: 1,
            ..Default::default()
        }
        .pool()
        .unwrap();
        Self {
            codec,
            pool,
            client,
            next_offset: 0,
        }
    }

    /// Applies `records` as one batch of `projection`; returns the refused offsets.
    async fn apply(&mut self, projection: &str, records: &[NormalizedMetrics]) -> Vec<i64> {
        let p = muster_projections::find(projection).unwrap();
        let mut batch = Vec::new();
        for r in records {
            batch.push(InRecord {
                topic: "staging".into(),
                partition: 0,
                offset: self.next_offset,
                key: Some(r.event_id.clone()),
                payload: self.codec.encode(r).await.unwrap(),
            });
            self.next_offset += 1;
        }
        let applier = Applier {
            projection: p.as_ref(),
            codec: &self.codec,
            offsets_key: &format!("staging:{projection}"),
            schema: "public",
            announce: true,
            durable: true,
        };
        applier.apply(&self.pool, batch).await.unwrap();
        self.client
            .query(
                "SELECT source_offset FROM dead_letters WHERE source_topic = 'staging'
                 ORDER BY source_offset",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// (samples, sum, max, min, registered max, last at (ms), last attendees) per (event,
    /// bucket (ms)) of `table`.
    async fn series(&self, table: &str) -> Vec<((String, i64), [i64; 7])> {
        self.client
            .query(
                &format!(
                    "SELECT event_id, (extract(epoch FROM bucket) * 1000)::bigint, samples,
                        attendees_sum, attendees_max, attendees_min, registered_max,
                        (extract(epoch FROM last_at) * 1000)::bigint, last_attendees
                     FROM {table} ORDER BY event_id, bucket"
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (r.get(0), r.get(1)),
                    [2, 3, 4, 5, 6, 7, 8].map(|i| r.get::<_, i64>(i)),
                )
            })
            .collect()
    }
}

/// What the tables must hold after all of `records`, by the in-memory merge.
fn reference(records: &[NormalizedMetrics], width: i64) -> Vec<((String, i64), [i64; 7])> {
    attendance_buckets(records, width)
        .unwrap()
        .into_iter()
        .map(|(k, a)| {
            (
                k,
                [
                    a.samples,
                    a.attendees_sum,
                    a.attendees_max,
                    a.attendees_min,
                    a.registered_max,
                    a.last_at,
                    a.last_attendees,
                ],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partials_of_one_key_merge_within_a_batch_and_onto_stored_rows() {
    let (s, run, _dir, codec) = Run::begin().parts();
    let mut setup = Setup::new(codec, &s.database).await;
    let (a, b) = (format!("a{run}"), format!("b{run}"));
    let t0 = 1_700_000_000_000 / HOUR * HOUR;
    let first = [
        normalized(&a, t0 + 1_000, 5),
        normalized(&a, t0 + 10_000, 9),
        normalized(&b, t0 + 1_000, 1),
        normalized(&a, t0 + 10_000, 4),
    ];
    let second = [
        normalized(&a, t0 + 20_000, 7),
        normalized(&a, t0 + MINUTE + 5_000, 3),
        normalized(&b, t0 + 2_000, 8),
    ];
    assert!(setup.apply("event_series", &first).await.is_empty());
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(
        setup.series("event_series_minute").await,
        reference(&first, MINUTE)
    );
    assert!(setup.apply("event_series", &second).await.is_empty());
    assert_eq!(
        setup.series("event_series_minute").await,
        reference(&all, MINUTE)
    );
    assert_eq!(
        setup.series("event_series_hour").await,
        reference(&all, HOUR)
    );
    // a's first minute: five samples, of which the latest (t0 + 20 s) is 7.
    let minute = &setup.series("event_series_minute").await[0];
    assert_eq!(minute.1[..4], [4, 25, 9, 4]);
    assert_eq!(minute.1[5..], [t0 + 20_000, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_staged_again_after_a_refusal_counts_each_record_once() {
    let (s, run, _dir, codec) = Run::begin().parts();
    let mut setup = Setup::new(codec, &s.database).await;
    let a = format!("a{run}");
    let t0 = 1_700_000_000_000 / HOUR * HOUR;
    // The NUL is refused by PostgreSQL in the COPY: the bisection stages the halves again in
    // the same transaction, and what the first attempt staged must not merge twice.
    let batch = [
        normalized(&a, t0, 5),
        normalized(&a, t0 + 1_000, 6),
        normalized("nul\0event", t0, 1),
        normalized(&a, t0 + 2_000, 7),
    ];
    assert_eq!(setup.apply("event_series", &batch).await, [2]);
    let good: Vec<_> = batch.iter().filter(|r| r.event_id == a).cloned().collect();
    assert_eq!(
        setup.series("event_series_minute").await,
        reference(&good, MINUTE)
    );
    assert_eq!(setup.series("event_series_minute").await[0].1[..2], [3, 18]);
    let next: i64 = setup
        .client
        .query_one(
            "SELECT next_offset FROM projection_offsets WHERE projection = 'staging:event_series'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 4, "the offsets commit with the merge");
}

async fn current(client: &tokio_postgres::Client, event: &str) -> i64 {
    client
        .query_one(
            "SELECT current_attendees FROM event_realtime WHERE event_id = $1",
            &[&event],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_snapshot_never_replaces_a_newer_one_in_or_across_batches() {
    let (s, run, _dir, codec) = Run::begin().parts();
    let mut setup = Setup::new(codec, &s.database).await;
    let a = format!("a{run}");
    let t0 = 1_700_000_000_000;
    let batch = [normalized(&a, t0 + 20, 7), normalized(&a, t0 + 10, 5)];
    setup.apply("event_realtime", &batch).await;
    assert_eq!(
        current(&setup.client, &a).await,
        7,
        "the newest of one batch"
    );
    setup
        .apply("event_realtime", &[normalized(&a, t0 + 15, 1)])
        .await;
    assert_eq!(
        current(&setup.client, &a).await,
        7,
        "older than the stored row"
    );
    setup
        .apply("event_realtime", &[normalized(&a, t0 + 30, 2)])
        .await;
    assert_eq!(
        current(&setup.client, &a).await,
        2,
        "newer than the stored row"
    );
    let changes: i64 = setup
        .client
        .query_one(
            "SELECT count(*) FROM change_log WHERE event_id = $1 AND kind = 'realtime'",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        changes, 3,
        "each batch records its change in its transaction"
    );
}
