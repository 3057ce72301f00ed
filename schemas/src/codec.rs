//! The Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body), with schemas
//! registered under `<topic>-value` so any Confluent-compatible client can read our topics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use schema_registry_converter::async_impl::easy_avro::{EasyAvroDecoder, EasyAvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::records::TopicRecord;
use crate::topics::{Topics, value_subject};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema registry at {url}: {source}")]
    Registry {
        url: String,
        #[source]
        source: SRCError,
    },
    #[error(
        "the schema registry refused the schema of {subject} (an incompatible change?): {source}"
    )]
    Register {
        subject: String,
        #[source]
        source: SRCError,
    },
    #[error("setting BACKWARD compatibility on {subject}: {reason}")]
    Compatibility { subject: String, reason: String },
    #[error("encoding a {topic} record: {source}")]
    Encode {
        topic: &'static str,
        #[source]
        source: SRCError,
    },
    #[error("decoding a {topic} record: {reason}")]
    Decode {
        topic: &'static str,
        reason: String,
        /// The registry could not be reached: the bytes may be fine, try again later.
        transient: bool,
    },
    #[error("encoding a {topic} record: {source}")]
    EncodeAvro {
        topic: &'static str,
        #[source]
        source: apache_avro::Error,
    },
    #[error("the built-in schema of {topic} does not parse: {source}")]
    BadSchema {
        topic: &'static str,
        #[source]
        source: apache_avro::Error,
    },
}

/// Encodes and decodes topic records through the schema registry. Cheap to clone; caches schemas.
#[derive(Clone)]
pub struct Codec {
    url: String,
    settings: SrSettings,
    encoder: EasyAvroEncoder,
    decoder: EasyAvroDecoder,
    reader_schemas: Arc<RwLock<HashMap<&'static str, Arc<Schema>>>>,
    fast: Arc<FastPaths>,
    /// Subjects follow the names on the cluster.
    topics: Topics,
}

/// Serde straight to and from Avro bytes, skipping the generic `Value` tree, once a topic's
/// schema id is known. Decoding takes it only when the writer's schema is the reader's own
/// (the common case); an older writer schema still goes through `Value` and resolution.
///
/// The parsed schemas are leaked so the datum readers and writers can borrow them for
/// `'static`: there is one per topic and writer schema version, a handful per process.
type FastReader = Option<Arc<GenericDatumReader<'static>>>;

#[derive(Default)]
struct FastPaths {
    writers: RwLock<HashMap<&'static str, Arc<(u32, GenericDatumWriter<'static>)>>>,
    /// `None`: that writer schema differs from the reader's, so decoding must resolve.
    readers: RwLock<HashMap<(u32, &'static str), FastReader>>,
}

fn leak_schema(json: &str) -> Result<&'static Schema, apache_avro::Error> {
    Ok(Box::leak(Box::new(Schema::parse_str(json)?)))
}

/// The schema id of a Confluent wire-format record, if it is one.
fn wire_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Why a record of `R`'s topic did not decode.
fn decode_error<R: TopicRecord>(reason: String, transient: bool) -> CodecError {
    CodecError::Decode {
        topic: R::TOPIC,
        reason,
        transient,
    }
}

impl CodecError {
    /// True when the failure says nothing about the record (the registry was unreachable), so
    /// the caller must retry instead of dead-lettering it.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Decode { transient, .. } => *transient,
            Self::Registry { source, .. }
            | Self::Register { source, .. }
            | Self::Encode { source, .. } => source.retriable,
            Self::BadSchema { .. } | Self::Compatibility { .. } | Self::EncodeAvro { .. } => false,
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("url", &self.url)
            .field("topic_prefix", &self.topics.prefix())
            .finish()
    }
}

impl Codec {
    /// `url` is the registry's Confluent-compatible base, e.g.
    /// `http://127.0.0.1:8081/apis/ccompat/v7` for Apicurio.
    pub fn new(url: &str) -> Result<Self, CodecError> {
        let settings = SrSettings::new_builder(url.trim_end_matches('/').to_owned())
            .set_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| CodecError::Registry {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            url: url.to_owned(),
            encoder: EasyAvroEncoder::new(settings.clone()),
            decoder: EasyAvroDecoder::new(settings.clone()),
            settings,
            reader_schemas: Arc::default(),
            fast: Arc::default(),
            topics: Topics::default(),
        })
    }

    /// The codec of a deployment whose topics are `topics` (its `kafka.topic_prefix`): the
    /// schemas it registers go to the subjects of those names.
    pub fn with_topics(mut self, topics: Topics) -> Self {
        self.topics = topics;
        self
    }

    /// The topic names of this codec's deployment.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    fn strategy<R: TopicRecord>(&self) -> SubjectNameStrategy {
        SubjectNameStrategy::TopicNameStrategyWithSchema(
            self.topics.of::<R>(),
            false,
            SuppliedSchema::new(None, SchemaType::Avro, R::SCHEMA.to_owned()),
        )
    }

    /// Registers `R`'s schema (or finds it registered) and returns its id. Workers call this for
    /// every topic they write before writing anything, so an incompatible change stops them at
    /// start instead of mid-stream.
    pub async fn register<R: TopicRecord>(&self) -> Result<u32, CodecError> {
        self.register_schema(R::TOPIC, R::SCHEMA).await
    }

    /// Every subject muster writes is BACKWARD compatible: a consumer with the new schema can
    /// read everything already in the topic, so replays keep working. Idempotent and safe when
    /// several workers start at once: a subject that already says BACKWARD is left alone, and a
    /// `409` (another worker created the rule a moment earlier) is read back, not fatal.
    async fn require_backward(&self, subject: &str) -> Result<(), CodecError> {
        let url = format!("{}/config/{subject}", self.url.trim_end_matches('/'));
        let refused = |reason: String| CodecError::Compatibility {
            subject: subject.to_owned(),
            reason,
        };
        let http = reqwest::Client::new();
        let current = || async {
            let answer = http
                .get(format!("{url}?defaultToGlobal=false"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .ok()?;
            if !answer.status().is_success() {
                return None;
            }
            compatibility_level(&answer.text().await.ok()?)
        };
        if current().await.as_deref() == Some("BACKWARD") {
            return Ok(());
        }
        let mut last = String::new();
        for attempt in 0..3u64 {
            let answer = http
                .put(&url)
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(r#"{"compatibility":"BACKWARD"}"#)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| refused(e.to_string()))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            last = format!("HTTP {status}: {}", answer.text().await.unwrap_or_default());
            if status != reqwest::StatusCode::CONFLICT {
                break;
            }
            if current().await.as_deref() == Some("BACKWARD") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(refused(last))
    }

    /// Registers a schema known only at run time (e.g. derived from a SQL processor's query)
    /// for the topic whose base name is `topic`.
    pub async fn register_schema(
        &self,
        topic: &'static str,
        schema: &str,
    ) -> Result<u32, CodecError> {
        let subject = value_subject(&self.topics.name(topic));
        self.require_backward(&subject).await?;
        // Posting a schema is idempotent; two workers posting the same new one at once can see
        // a conflict from the registry, so try again before giving up.
        let mut attempt = 0u64;
        loop {
            let posted = schema_registry_converter::async_impl::schema_registry::post_schema(
                &self.settings,
                subject.clone(),
                SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned()),
            )
            .await;
            match posted {
                Ok(registered) => return Ok(registered.id),
                Err(source) if attempt >= 2 || !source.retriable && !is_conflict(&source) => {
                    return Err(CodecError::Register { subject, source });
                }
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
            }
        }
    }

    /// Encodes an Avro value with a schema known only at run time, for the topic whose base
    /// name is `topic`.
    pub async fn encode_value(
        &self,
        topic: &'static str,
        schema: &str,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, CodecError> {
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            self.topics.name(topic),
            false,
            SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned()),
        );
        self.encoder
            .encode_value(value, &strategy)
            .await
            .map_err(|source| CodecError::Encode { topic, source })
    }

    pub async fn encode<R: TopicRecord>(&self, record: &R) -> Result<Vec<u8>, CodecError> {
        let fast = self
            .fast
            .writers
            .read()
            .expect("poisoned")
            .get(R::TOPIC)
            .cloned();
        if let Some(w) = fast {
            let mut buf = Vec::with_capacity(256);
            buf.push(0);
            buf.extend_from_slice(&w.0.to_be_bytes());
            w.1.write_ser(&mut buf, record)
                .map_err(|source| CodecError::EncodeAvro {
                    topic: R::TOPIC,
                    source,
                })?;
            return Ok(buf);
        }
        // The first record of a topic goes through the registry client, which looks up (or
        // registers) the schema id; later ones reuse it.
        let bytes = self
            .encoder
            .encode_struct(record, &self.strategy::<R>())
            .await
            .map_err(|source| CodecError::Encode {
                topic: R::TOPIC,
                source,
            })?;
        if let Some(id) = wire_id(&bytes) {
            let bad = |source| CodecError::BadSchema {
                topic: R::TOPIC,
                source,
            };
            let schema = leak_schema(R::SCHEMA).map_err(bad)?;
            let writer = GenericDatumWriter::builder(schema).build().map_err(bad)?;
            self.fast
                .writers
                .write()
                .expect("poisoned")
                .insert(R::TOPIC, Arc::new((id, writer)));
        }
        Ok(bytes)
    }

    /// Decodes with the writer's schema from the registry, then resolves to `R`'s schema so that
    /// records written before a compatible change still read (missing fields take defaults).
    pub async fn decode<R: TopicRecord>(&self, bytes: &[u8]) -> Result<R, CodecError> {
        if let Some(id) = wire_id(bytes) {
            let known = self
                .fast
                .readers
                .read()
                .expect("poisoned")
                .get(&(id, R::TOPIC))
                .cloned();
            let reader = match known {
                Some(r) => r,
                None => self.learn_reader::<R>(id).await?,
            };
            if let Some(reader) = reader {
                return reader
                    .read_deser::<R>(&mut &bytes[5..])
                    .map_err(|e| decode_error::<R>(e.to_string(), false));
            }
        }
        let decoded = self
            .decoder
            .decode(Some(bytes))
            .await
            .map_err(|e| decode_error::<R>(e.to_string(), e.retriable))?;
        let reader = self.reader_schema::<R>()?;
        let value = decoded
            .value
            .resolve(&reader)
            .map_err(|e| decode_error::<R>(e.to_string(), false))?;
        apache_avro::from_value(&value).map_err(|e| decode_error::<R>(e.to_string(), false))
    }

    /// Looks up writer schema `id` and remembers whether records written with it can be read
    /// straight into `R` (same schema) or need resolution.
    async fn learn_reader<R: TopicRecord>(&self, id: u32) -> Result<FastReader, CodecError> {
        let registered = schema_registry_converter::async_impl::schema_registry::get_schema_by_id(
            id,
            &self.settings,
        )
        .await
        .map_err(|e| decode_error::<R>(e.to_string(), e.retriable))?;
        let reader = self.reader_schema::<R>()?;
        let fast = match Schema::parse_str(&registered.schema) {
            Ok(writer) if writer.canonical_form() == reader.canonical_form() => {
                let bad = |source| CodecError::BadSchema {
                    topic: R::TOPIC,
                    source,
                };
                let schema = leak_schema(R::SCHEMA).map_err(bad)?;
                let r = GenericDatumReader::builder(schema).build().map_err(bad)?;
                Some(Arc::new(r))
            }
            // Another schema (or one this library cannot parse): the slow path says why.
            _ => None,
        };
        self.fast
            .readers
            .write()
            .expect("poisoned")
            .insert((id, R::TOPIC), fast.clone());
        Ok(fast)
    }

    /// Decodes with the writer's schema alone, for records of schemas derived at run time.
    pub async fn decode_any(&self, bytes: &[u8]) -> Result<apache_avro::types::Value, CodecError> {
        self.decoder
            .decode(Some(bytes))
            .await
            .map(|d| d.value)
            .map_err(|e| CodecError::Decode {
                topic: "(any)",
                reason: e.to_string(),
                transient: e.retriable,
            })
    }

    fn reader_schema<R: TopicRecord>(&self) -> Result<Arc<Schema>, CodecError> {
        if let Some(s) = self.reader_schemas.read().expect("poisoned").get(R::TOPIC) {
            return Ok(s.clone());
        }
        let parsed =
            Arc::new(
                Schema::parse_str(R::SCHEMA).map_err(|source| CodecError::BadSchema {
                    topic: R::TOPIC,
                    source,
                })?,
            );
        self.reader_schemas
            .write()
            .expect("poisoned")
            .insert(R::TOPIC, parsed.clone());
        Ok(parsed)
    }
}

/// `compatibilityLevel` (Confluent) or `compatibility` of a registry config answer.
fn compatibility_level(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("compatibilityLevel")
        .or_else(|| v.get("compatibility"))
        .and_then(|c| c.as_str())
        .map(str::to_owned)
}

fn is_conflict(e: &SRCError) -> bool {
    e.error.contains("409") || e.error.to_ascii_lowercase().contains("conflict")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;

    #[test]
    fn compatibility_is_read_from_either_answer_shape() {
        assert_eq!(
            compatibility_level(r#"{"compatibilityLevel":"BACKWARD"}"#).as_deref(),
            Some("BACKWARD")
        );
        assert_eq!(
            compatibility_level(r#"{"compatibility":"FULL"}"#).as_deref(),
            Some("FULL")
        );
        assert_eq!(compatibility_level("{}"), None);
    }

    /// Every built-in schema parses and every record round-trips the way the codec encodes and
    /// decodes it, so a mismatch between a struct and its `.avsc` fails here rather than against
    /// a live registry.
    fn roundtrip<R: TopicRecord + PartialEq + std::fmt::Debug>(record: R) {
        let schema = Schema::parse_str(R::SCHEMA).expect("schema parses");
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .expect("writer")
            .write_ser_to_vec(&record)
            .expect("encodes");
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .expect("reader");
        // The fast path: serde straight from the bytes.
        let direct: R = reader.read_deser(&mut &bytes[..]).expect("deserializes");
        assert_eq!(direct, record);
        // The resolving path, taken for records of an older writer schema.
        let back = reader
            .read_value(&mut &bytes[..])
            .expect("decodes")
            .resolve(&schema)
            .expect("resolves");
        let back: R = apache_avro::from_value(&back).expect("from value");
        assert_eq!(back, record);
        // Both writers agree byte for byte.
        let via_value = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .expect("writer")
            .write_value_to_vec(apache_avro::to_value(&record).expect("to value"))
            .expect("encodes via Value");
        assert_eq!(via_value, bytes);
    }

    #[test]
    fn raw_snapshot_roundtrips() {
        roundtrip(RawSnapshot {
            event_id: "e1".into(),
            service_name: "gates".into(),
            source: SnapshotSource::InitialSync,
            data_schema: "s-attend/v1".into(),
            fetched_at: 1_764_000_000_000,
            http_status: 200,
            body: "{\"participants\":{}}".into(),
            capacity: Some(1200),
        });
    }

    #[test]
    fn normalized_roundtrips() {
        roundtrip(NormalizedMetrics {
            event_id: "e1".into(),
            timestamp: 1,
            fetched_at: 2,
            total_registered: 1200,
            current_attendees: 830,
            checked_in: 900,
            checked_out: 70,
            attendance_rate: 830.0 / 1200.0,
            gate_activity: vec![GateActivity {
                gate_id: "G1".into(),
                status: "open".into(),
                throughput: 12.5,
            }],
            alerts: vec![UpstreamAlert {
                id: "a1".into(),
                severity: "warning".into(),
                message: "queue".into(),
            }],
            status: "live".into(),
            source: SourceOffset {
                topic: "t".into(),
                partition: 0,
                offset: 7,
            },
            capacity: Some(1500),
        });
    }

    #[test]
    fn checkin_and_health_roundtrip() {
        roundtrip(RawCheckin {
            event_id: "e1".into(),
            gate_id: "G1".into(),
            participant: "ab12".into(),
            direction: Direction::Out,
            scanned_at: 1,
            received_at: 2,
            delivery_id: "msg_1".into(),
        });
        roundtrip(ServiceHealth {
            event_id: "e1".into(),
            service_name: "s".into(),
            previous: None,
            current: Health::Down,
            reason: "HTTP 500".into(),
            latency_ms: Some(12),
            consecutive_failures: 3,
            at: 9,
        });
    }

    #[test]
    fn dead_letter_roundtrips() {
        let mut dl = DeadLetter::new(
            "normalize",
            "not JSON",
            SourceOffset {
                topic: "t".into(),
                partition: 1,
                offset: 2,
            },
            None,
            vec![0, 159, 146, 150],
        );
        dl.failed_at = 5;
        roundtrip(dl.clone());
        dl.event_id = Some("e9".into());
        roundtrip(dl);
    }

    #[test]
    fn alert_and_alert_state_roundtrip() {
        roundtrip(Alert {
            alert_id: "e1:gate-down:G1@5".into(),
            event_id: "e1".into(),
            kind: AlertKind::GateDown,
            subject: Some("G1".into()),
            action: AlertAction::Resolved,
            severity: Severity::Critical,
            message: "gate G1 is down".into(),
            raised_at: 5,
            at: 9,
            duration_ms: Some(4),
            source: SourceOffset {
                topic: "t".into(),
                partition: 0,
                offset: 3,
            },
        });
        roundtrip(AlertState {
            event_id: "e1".into(),
            active: vec![ActiveAlert {
                alert_id: "e1:occupancy@5".into(),
                kind: AlertKind::Occupancy,
                subject: None,
                severity: Severity::Warning,
                message: "920 attendees".into(),
                raised_at: 5,
            }],
            gate_baselines: vec![GateBaseline {
                gate_id: "G1".into(),
                throughput: 12.5,
            }],
            last_metrics_at: Some(5),
        });
    }
}
