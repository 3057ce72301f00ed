//! Where one stream is, and what it sends next: the backlog from the log, then the live
//! broadcast, each change once whichever way it came, only the ones its viewer may see. Kept
//! apart from warp and PostgreSQL (the log and the grants are traits) so the rules are tested
//! on their own.
//!
//! A stream subscribes to the broadcast *before* it reads the log (or the head), so nothing
//! committed after that read can miss it; what both bring is sent once, by id (ids follow
//! commit order, so everything up to `last` was sent or passed over). Its memory is one page
//! of the log plus its place in the broadcast's shared ring: a stream that falls behind by
//! more than the ring holds is told so by the broadcast and reads the log again from `last`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::feed::{Change, Since};
use crate::problem::Problem;

/// What a stream sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// A change of an event the viewer may see.
    Change(Arc<Change>),
    /// Caught up: live changes follow; resume from this id.
    Ready(i64),
    /// Changes were lost to the log's retention (or the id was none of the log's): re-read
    /// what is shown and continue from this id.
    Reset(i64),
    /// The key no longer works: the stream ends.
    Revoked,
}

/// The change log a stream catches up from (the feed).
pub trait Log {
    fn since(&self, id: i64) -> impl Future<Output = Result<Since, Problem>> + Send;
}

impl Log for crate::feed::Feed {
    fn since(&self, id: i64) -> impl Future<Output = Result<Since, Problem>> + Send {
        crate::feed::Feed::since(self, id)
    }
}

/// Whether the viewer may see an event now: `Some(false)` not granted, `None` when its key
/// no longer works.
pub trait Gate {
    fn allows(
        &mut self,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<bool>, Problem>> + Send;
}

pub struct Cursor<L, G> {
    log: L,
    gate: G,
    rx: broadcast::Receiver<Arc<Change>>,
    /// The last change sent or passed over: nothing at or below it is sent again.
    last: i64,
    /// Changes read, not yet sent.
    queue: VecDeque<Arc<Change>>,
    /// The log is read from `last` before the broadcast is.
    catching_up: bool,
    ready_sent: bool,
    ended: bool,
}

impl<L: Log, G: Gate> Cursor<L, G> {
    /// A new stream: live changes after `head` (the log's newest id, read after subscribing
    /// `rx`).
    pub fn fresh(log: L, gate: G, rx: broadcast::Receiver<Arc<Change>>, head: i64) -> Self {
        Self::new(log, gate, rx, head, false)
    }

    /// A stream resumed after `id` (`Last-Event-ID`): the log's changes after it first.
    pub fn resume(log: L, gate: G, rx: broadcast::Receiver<Arc<Change>>, id: i64) -> Self {
        Self::new(log, gate, rx, id, true)
    }

    fn new(
        log: L,
        gate: G,
        rx: broadcast::Receiver<Arc<Change>>,
        last: i64,
        catching_up: bool,
    ) -> Self {
        Self {
            log,
            gate,
            rx,
            last,
            queue: VecDeque::new(),
            catching_up,
            ready_sent: false,
            ended: false,
        }
    }

    /// What to send next; `None` ends the stream: the feed stopped (shutdown), or the log or
    /// the key could not be read (the client reconnects with its last id and loses nothing).
    pub async fn next(&mut self) -> Option<Out> {
        if self.ended {
            return None;
        }
        loop {
            while let Some(change) = self.queue.pop_front() {
                if change.id <= self.last {
                    continue;
                }
                self.last = change.id;
                match self.gate.allows(&change.event_id).await {
                    Ok(Some(true)) => return Some(Out::Change(change)),
                    Ok(Some(false)) => {}
                    Ok(None) => {
                        self.ended = true;
                        return Some(Out::Revoked);
                    }
                    Err(p) => return self.end("checking the key", p),
                }
            }
            if self.catching_up {
                match self.log.since(self.last).await {
                    Ok(Since::Changes { changes, more }) => {
                        self.queue.extend(changes);
                        self.catching_up = more;
                    }
                    Ok(Since::Expired { head }) => {
                        self.last = head;
                        self.catching_up = false;
                        return Some(Out::Reset(head));
                    }
                    Err(p) => return self.end("reading the change log", p),
                }
                continue;
            }
            if !self.ready_sent {
                self.ready_sent = true;
                return Some(Out::Ready(self.last));
            }
            match self.rx.recv().await {
                Ok(change) => self.queue.push_back(change),
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("muster_stream_lagged_total").increment(1);
                    tracing::debug!(
                        missed,
                        after = self.last,
                        "stream fell behind the feed; reading the log"
                    );
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn end(&mut self, doing: &str, p: Problem) -> Option<Out> {
        tracing::warn!(status = p.status, title = %p.title, "stream ended {doing}");
        self.ended = true;
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;

    use super::*;
    use crate::feed::ChangeKind;

    fn change(id: i64, event: &str) -> Arc<Change> {
        Arc::new(Change {
            id,
            event_id: event.into(),
            kind: ChangeKind::Realtime,
            at: Utc::now(),
            event: None,
        })
    }

    /// A log holding `rows` (ids in order), pruned before `first`, answering `page` at a time;
    /// it records what it was asked.
    #[derive(Clone)]
    struct FakeLog {
        rows: Vec<Arc<Change>>,
        first: i64,
        page: usize,
        asked: Arc<Mutex<Vec<i64>>>,
    }

    impl FakeLog {
        fn new(rows: Vec<Arc<Change>>, first: i64, page: usize) -> Self {
            Self {
                rows,
                first,
                page,
                asked: Arc::default(),
            }
        }
    }

    impl Log for FakeLog {
        fn since(&self, id: i64) -> impl Future<Output = Result<Since, Problem>> + Send {
            self.asked.lock().unwrap().push(id);
            let head = self.rows.last().map_or(0, |c| c.id);
            let answer = if id < self.first - 1 {
                Since::Expired { head }
            } else {
                let after: Vec<_> = self.rows.iter().filter(|c| c.id > id).cloned().collect();
                let more = after.len() > self.page;
                Since::Changes {
                    changes: after.into_iter().take(self.page).collect(),
                    more,
                }
            };
            async move { Ok(answer) }
        }
    }

    /// A partner granted `granted`, whose key stops working after `uses` checks.
    struct FakeGate {
        granted: Vec<&'static str>,
        uses: usize,
    }

    impl Gate for FakeGate {
        fn allows(
            &mut self,
            event_id: &str,
        ) -> impl Future<Output = Result<Option<bool>, Problem>> + Send {
            let answer = if self.uses == 0 {
                None
            } else {
                self.uses -= 1;
                Some(self.granted.contains(&event_id))
            };
            async move { Ok(answer) }
        }
    }

    fn gate(granted: &[&'static str]) -> FakeGate {
        FakeGate {
            granted: granted.to_vec(),
            uses: usize::MAX,
        }
    }

    /// What the cursor sends until it would wait on the broadcast (each test ends its
    /// broadcast with a change the cursor sends, so `next` never waits for good).
    async fn drain<L: Log, G: Gate>(cursor: &mut Cursor<L, G>) -> Vec<Out> {
        let mut out = Vec::new();
        loop {
            let idle = cursor.queue.is_empty() && !cursor.catching_up && cursor.ready_sent;
            if idle && cursor.rx.is_empty() {
                return out;
            }
            match cursor.next().await {
                Some(o) => out.push(o),
                None => return out,
            }
        }
    }

    fn ids(out: &[Out]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Out::Change(c) => format!("{}:{}", c.id, c.event_id),
                Out::Ready(id) => format!("ready {id}"),
                Out::Reset(id) => format!("reset {id}"),
                Out::Revoked => "revoked".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_fresh_stream_sends_only_what_follows_the_head_and_only_granted_events() {
        let (tx, rx) = broadcast::channel(16);
        let log = FakeLog::new(vec![], 1, 10);
        let mut cursor = Cursor::fresh(log.clone(), gate(&["a"]), rx, 5);
        // Committed before the head was read, broadcast after the subscription: skipped.
        tx.send(change(4, "a")).unwrap();
        tx.send(change(5, "a")).unwrap();
        tx.send(change(6, "a")).unwrap();
        tx.send(change(7, "b")).unwrap();
        tx.send(change(8, "a")).unwrap();
        let out = drain(&mut cursor).await;
        assert_eq!(ids(&out), ["ready 5", "6:a", "8:a"]);
        assert!(
            log.asked.lock().unwrap().is_empty(),
            "a fresh stream reads no log"
        );
    }

    #[tokio::test]
    async fn a_resumed_stream_sends_the_backlog_then_live_changes_each_once() {
        let rows: Vec<_> = (11..=17).map(|i| change(i, "a")).collect();
        let log = FakeLog::new(rows, 1, 3);
        let (tx, rx) = broadcast::channel(16);
        // Committed while the backlog was read: both the log and the broadcast bring them.
        for i in 15..=19 {
            tx.send(change(i, "a")).unwrap();
        }
        let mut cursor = Cursor::resume(log.clone(), gate(&["a"]), rx, 10);
        let out = drain(&mut cursor).await;
        let want: Vec<String> = (11..=17)
            .map(|i| format!("{i}:a"))
            .chain(["ready 17".into(), "18:a".into(), "19:a".into()])
            .collect();
        assert_eq!(ids(&out), want);
        assert_eq!(*log.asked.lock().unwrap(), [10, 13, 16], "a page at a time");
    }

    #[tokio::test]
    async fn an_id_older_than_the_log_gets_a_reset_then_live_changes() {
        let rows: Vec<_> = (20..=22).map(|i| change(i, "a")).collect();
        let (tx, rx) = broadcast::channel(16);
        let mut cursor = Cursor::resume(FakeLog::new(rows, 20, 10), gate(&["a"]), rx, 3);
        tx.send(change(22, "a")).unwrap();
        tx.send(change(23, "a")).unwrap();
        let out = drain(&mut cursor).await;
        assert_eq!(ids(&out), ["reset 22", "ready 22", "23:a"]);
    }

    #[tokio::test]
    async fn a_stream_that_lags_the_broadcast_catches_up_from_the_log() {
        let rows: Vec<_> = (1..=10).map(|i| change(i, "a")).collect();
        let (tx, rx) = broadcast::channel(2);
        let log = FakeLog::new(rows.clone(), 1, 4);
        let mut cursor = Cursor::fresh(log.clone(), gate(&["a"]), rx, 0);
        assert_eq!(cursor.next().await, Some(Out::Ready(0)));
        // Eleven changes into a ring of two: the receiver lost nine. The log has the first
        // ten; the eleventh commits after the stream read it.
        for c in rows {
            tx.send(c).unwrap();
        }
        tx.send(change(11, "a")).unwrap();
        let out = drain(&mut cursor).await;
        let want: Vec<String> = (1..=11).map(|i| format!("{i}:a")).collect();
        assert_eq!(ids(&out), want, "every change, once, in order");
        assert_eq!(*log.asked.lock().unwrap(), [0, 4, 8]);
    }

    #[tokio::test]
    async fn a_revoked_key_ends_the_stream() {
        let (tx, rx) = broadcast::channel(16);
        let gate = FakeGate {
            granted: vec!["a"],
            uses: 1,
        };
        let mut cursor = Cursor::fresh(FakeLog::new(vec![], 1, 10), gate, rx, 0);
        tx.send(change(1, "a")).unwrap();
        tx.send(change(2, "a")).unwrap();
        let out = drain(&mut cursor).await;
        assert_eq!(ids(&out), ["ready 0", "1:a", "revoked"]);
        assert_eq!(cursor.next().await, None);
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_feed_stops() {
        let (tx, rx) = broadcast::channel(16);
        let mut cursor = Cursor::fresh(FakeLog::new(vec![], 1, 10), gate(&["a"]), rx, 0);
        assert_eq!(cursor.next().await, Some(Out::Ready(0)));
        drop(tx);
        assert_eq!(cursor.next().await, None);
    }
}
