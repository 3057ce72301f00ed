//! What a processor is: a stateless function from a micro-batch of input records to output
//! records. The runtime handles consuming, transactions, offsets and restarts; a processor only
//! says what it reads, what it writes, and how one batch becomes outputs.

use async_trait::async_trait;
use muster_runtime::KafkaConfig;
use muster_schemas::Codec;

pub use muster_runtime::batch::{InRecord, OutRecord};
pub use muster_runtime::dead_letters::output as dead_letter;

#[async_trait]
pub trait Processor: Send + Sync {
    /// Unique and stable: it names the consumer group (`processors.<name>`).
    fn name(&self) -> &str;
    /// One line for `muster process --list`.
    fn description(&self) -> String;
    /// Topics consumed.
    fn inputs(&self) -> Vec<String>;
    /// Topics produced (besides the dead-letter topic).
    fn outputs(&self) -> Vec<String>;
    /// Registers every output schema; an incompatible one must fail here, before any write.
    async fn register(&self, codec: &Codec) -> anyhow::Result<()>;
    /// Compacted topics holding the processor's state, keyed like its inputs and written in
    /// the batch's transaction. Most processors keep no state and have none.
    fn state_topics(&self) -> Vec<String> {
        Vec::new()
    }
    /// Reloads the state from `state_topics()`. Called before the first batch and again after
    /// every assignment change, so whichever instance owns an event sees its committed state.
    async fn restore(&self, _kafka: &KafkaConfig, _codec: &Codec) -> anyhow::Result<()> {
        Ok(())
    }
    /// Turns one batch into outputs. Bad records become dead letters, never errors: an error
    /// aborts the batch's transaction and the batch is retried.
    async fn process(&self, batch: &[InRecord], codec: &Codec) -> anyhow::Result<Vec<OutRecord>>;
}
