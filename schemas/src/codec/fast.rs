//! The serde fast path: straight to and from Avro bytes once a topic's schema id is known.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;

/// Serde straight to and from Avro bytes, skipping the generic `Value` tree, once a topic's
/// schema id is known. Decoding takes it only when the writer's schema is the reader's own
/// (the common case); an older writer schema still goes through `Value` and resolution.
///
/// The parsed schemas are leaked so the datum readers and writers can borrow them for
/// `'static`: there is one per topic and writer schema version, a handful per process.
pub(super) type FastReader = Option<Arc<GenericDatumReader<'static>>>;

#[derive(Default)]
pub(super) struct FastPaths {
    pub(super) writers: RwLock<HashMap<&'static str, Arc<(u32, GenericDatumWriter<'static>)>>>,
    /// `None`: that writer schema differs from the reader's, so decoding must resolve.
    pub(super) readers: RwLock<HashMap<(u32, &'static str), FastReader>>,
}

pub(super) fn leak_schema(json: &str) -> Result<&'static Schema, apache_avro::Error> {
    Ok(Box::leak(Box::new(Schema::parse_str(json)?)))
}

/// The schema id of a Confluent wire-format record, if it is one.
pub(super) fn wire_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
