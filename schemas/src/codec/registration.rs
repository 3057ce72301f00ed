//! Registering schemas: BACKWARD compatibility on every subject, and posting schemas with
//! retries when several workers start at once.

use std::time::Duration;

use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

use super::{Codec, CodecError};
use crate::records::TopicRecord;
use crate::topics::value_subject;

impl Codec {
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
}
