//! What can go wrong encoding, decoding and registering, and which failures are worth retrying.

use schema_registry_converter::error::SRCError;

use crate::records::TopicRecord;

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

/// Why a record of `R`'s topic did not decode.
pub(super) fn decode_error<R: TopicRecord>(reason: String, transient: bool) -> CodecError {
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
