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
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::records::TopicRecord;
use crate::topics::Topics;

mod error;
mod fast;
#[cfg(test)]
mod fuzz_tests;
mod registration;

pub use error::CodecError;
use error::decode_error;
use fast::{FastPaths, FastReader, leak_schema, wire_id};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;

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
