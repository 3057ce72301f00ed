//! The test broker: producing records the way the stages do, and reading topics from a point
//! in time without a consumer group's state.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use muster_schemas::{Codec, DeadLetter, TopicRecord};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use rdkafka::message::Message;

use super::{Services, run_id, wait_for};

/// An idempotent producer to the test broker.
pub fn producer(s: &Services) -> FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Queues a record, waiting while the producer's queue is full; its delivery says where it
/// landed.
pub async fn queue(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> DeliveryFuture {
    loop {
        match p.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(d) => return d,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Where a queued record landed: (partition, offset).
pub async fn delivered(d: DeliveryFuture) -> (i32, i64) {
    let d = d.await.unwrap().map_err(|(e, _)| e).unwrap();
    (d.partition, d.offset)
}

/// Produces `payload` to `topic` under `key` and returns where it landed.
pub async fn send_bytes(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> (i32, i64) {
    delivered(queue(p, topic, key, payload).await).await
}

/// Encodes `r` through the registry and produces it to its topic, keyed by its event; returns
/// where it landed.
pub async fn send<R: TopicRecord>(p: &FutureProducer, codec: &Codec, r: &R) -> (i32, i64) {
    let payload = codec.encode(r).await.unwrap();
    send_bytes(p, &codec.topics().of::<R>(), r.key().unwrap(), &payload).await
}

/// Produces `records` as one burst (all queued, then awaited), each to its topic keyed by its
/// event, and returns where each landed (partition, offset), in order.
pub async fn send_burst<R: TopicRecord>(
    p: &FutureProducer,
    codec: &Codec,
    records: &[R],
) -> Vec<(i32, i64)> {
    let topic = codec.topics().of::<R>();
    let mut queued = Vec::with_capacity(records.len());
    for r in records {
        let payload = codec.encode(r).await.unwrap();
        queued.push(queue(p, &topic, r.key().unwrap(), &payload).await);
    }
    let mut at = Vec::with_capacity(queued.len());
    for d in queued {
        at.push(delivered(d).await);
    }
    at
}

/// The partitions of `topic`, waiting until it exists and each partition has a leader (a
/// worker creates its topics as it starts; each test's topics are new).
pub fn partitions(c: &impl Consumer, topic: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<i32> = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()
            .and_then(|meta| {
                let t = &meta.topics()[0];
                let ready = t.error().is_none()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0);
                ready.then(|| t.partitions().iter().map(|p| p.id()).collect())
            })
            .unwrap_or_default();
        if !ids.is_empty() {
            return ids;
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A consumer without a consumer group's state; `isolation` is Kafka's `isolation.level`.
fn unassigned(s: &Services, isolation: &str) -> StreamConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", format!("reader-{}", run_id()))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Per partition of `topic`, the offset of the first record produced at or after `since_ms`
/// (0: the beginning), or `None` where there is none yet.
fn offsets_at(c: &StreamConsumer, topic: &str, since_ms: i64) -> Vec<(i32, Option<i64>)> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions(c, topic) {
        tpl.add_partition_offset(topic, p, Offset::Offset(since_ms))
            .unwrap();
    }
    // A new topic's leaders may still be moving: ask again until the broker answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let at = loop {
        match c.offsets_for_times(tpl.clone(), Duration::from_secs(10)) {
            Ok(at) => break at,
            Err(e) => assert!(Instant::now() < deadline, "offsets of {topic}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    at.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), Some(o)),
            _ => (e.partition(), None),
        })
        .collect()
}

/// A consumer of `topic` from the first record produced at or after `since_ms` (0: the
/// beginning). `isolation` is Kafka's `isolation.level`.
pub fn consumer_at(s: &Services, topic: &str, since_ms: i64, isolation: &str) -> StreamConsumer {
    let c = unassigned(s, isolation);
    let mut start = TopicPartitionList::new();
    for (p, at) in offsets_at(&c, topic, since_ms) {
        let offset = at.map_or(Offset::End, Offset::Offset);
        start.add_partition_offset(topic, p, offset).unwrap();
    }
    c.assign(&start).unwrap();
    c
}

/// A read_committed consumer of `topic` from `since_ms` on: what the stages' transactions
/// committed.
pub fn reader(s: &Services, topic: &str, since_ms: i64) -> StreamConsumer {
    consumer_at(s, topic, since_ms, "read_committed")
}

/// A client for the cluster's metadata.
pub fn metadata(s: &Services) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap()
}

/// A topic config's value on the broker (e.g. `retention.ms`), as Kafka describes it.
pub async fn topic_config(s: &Services, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .unwrap();
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap()
        .pop()?
        .ok()?;
    described.get(key)?.value.clone()
}

/// The dead letters on the test's dead-letter topic that match `keep`, from the first record
/// produced at or after `since_ms` to the topic's end as it is when called: a dead letter
/// published before the call is counted exactly as often as it was produced.
pub async fn dead_letters_since(
    s: &Services,
    codec: &Codec,
    since_ms: i64,
    keep: impl Fn(&DeadLetter) -> bool,
) -> Vec<DeadLetter> {
    let topic = &super::topic::<DeadLetter>();
    // Uncommitted too: a killed transactional stage holds the committed end back for a minute.
    let c = unassigned(s, "read_uncommitted");
    let mut start = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for (p, at) in offsets_at(&c, topic, since_ms) {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        let from = at.unwrap_or(high);
        start
            .add_partition_offset(topic, p, Offset::Offset(from))
            .unwrap();
        ends.insert(p, (from, high));
    }
    c.assign(&start).unwrap();
    let mut found = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let position = c.position().unwrap();
        let done = ends.iter().all(|(p, (from, high))| {
            let at = match position.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => *from,
            };
            at >= *high
        });
        if done {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "reading {topic} to its end took over a minute"
        );
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await else {
            continue;
        };
        let Some(payload) = m.payload() else { continue };
        if let Ok(dl) = codec.decode::<DeadLetter>(payload).await
            && keep(&dl)
        {
            found.push(dl);
        }
    }
}

/// The dead letters of the record at `topic`/`at` (partition, offset): its `dead_letters` rows
/// once `count` of them (one per refusing stage) are recorded and published (columns: stage,
/// reason, event_id, payload; ordered by stage), and what the dead-letter topic holds of it
/// from `since_ms` on.
pub async fn dead_letters_of(
    s: &Services,
    codec: &Codec,
    client: &tokio_postgres::Client,
    topic: &str,
    at: (i32, i64),
    count: usize,
    since_ms: i64,
) -> (Vec<tokio_postgres::Row>, Vec<DeadLetter>) {
    let rows = wait_for(
        "the dead letters recorded and published",
        Duration::from_secs(60),
        || async move {
            let rows = client
                .query(
                    "SELECT stage, reason, event_id, payload, published_at IS NOT NULL
                     FROM dead_letters WHERE source_topic = $1 AND source_partition = $2
                       AND source_offset = $3 ORDER BY stage",
                    &[&topic, &at.0, &at.1],
                )
                .await
                .unwrap();
            (rows.len() == count && rows.iter().all(|r| r.get::<_, bool>(4))).then_some(rows)
        },
    )
    .await;
    let published = dead_letters_since(s, codec, since_ms, |dl| {
        dl.source_topic == topic && (dl.source_partition, dl.source_offset) == at
    })
    .await;
    (rows, published)
}
