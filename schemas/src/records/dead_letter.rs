use serde::{Deserialize, Serialize};

use super::{SourceOffset, TopicRecord};
use crate::topics;

/// Input a stage could not process, with the reason; nothing bad is silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub event_id: Option<String>,
    pub stage: String,
    pub error: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    #[serde(with = "apache_avro::serde::bytes")]
    pub payload: Vec<u8>,
    pub failed_at: i64,
}

impl DeadLetter {
    pub fn new(
        stage: &str,
        error: impl Into<String>,
        source: SourceOffset,
        event_id: Option<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            event_id,
            stage: stage.to_owned(),
            error: error.into(),
            source_topic: source.topic,
            source_partition: source.partition,
            source_offset: source.offset,
            payload,
            failed_at: super::now_millis(),
        }
    }
}

impl TopicRecord for DeadLetter {
    const TOPIC: &'static str = topics::DEAD_LETTER;
    const SCHEMA: &'static str = include_str!("../../avro/dead_letter.avsc");

    fn key(&self) -> Option<&str> {
        self.event_id.as_deref()
    }
}
