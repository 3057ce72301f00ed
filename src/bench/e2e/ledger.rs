//! Which snapshot showed where, and when: pure bookkeeping, so the matching and the figures are
//! tested without the pipeline.
//!
//! A snapshot is known by its event and its `timestamp` (epoch ms): the simulator stamps each
//! answer with the time it served it, normalization keeps it as `observed_at`, and the realtime
//! row and the API's `realtime.observedAt` carry it. So the upstream's answer time is the
//! snapshot's own identity, and every latency is a sighting's wall-clock time minus it (the
//! simulator and the bench share the machine's clock).

use std::collections::{HashMap, HashSet};

/// A snapshot: its event and its `timestamp` (epoch ms).
pub type Snapshot = (String, i64);

/// Where a snapshot was first seen, in epoch microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Sighting {
    /// When the bench read the realtime row showing it.
    row: Option<i64>,
    /// When the change log recorded the commit that wrote it (just before the commit).
    logged: Option<i64>,
    /// When the API first answered it.
    api: Option<i64>,
}

/// Every sighting of the run. Only snapshots answered inside the measured window count.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: HashMap<Snapshot, Sighting>,
}

/// Latencies in milliseconds, sorted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Latencies(Vec<f64>);

impl Latencies {
    pub fn new(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self(ms)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The nearest-rank percentile (`p` in 0..=1); `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.0.len();
        (n > 0).then(|| self.0[((n as f64 * p).ceil() as usize).clamp(1, n) - 1])
    }

    pub fn max(&self) -> Option<f64> {
        self.0.last().copied()
    }
}

/// What the measured window showed.
#[derive(Debug, Default)]
pub struct Window {
    /// Upstream answer → the bench reading the realtime row that shows it.
    pub row: Latencies,
    /// Upstream answer → the change log's record of the commit (no reader's delay in it).
    pub logged: Latencies,
    /// Change log record → the bench's read: what the method itself adds.
    pub method: Latencies,
    /// Upstream answer → the API's first answer showing it (sampled events only).
    pub api: Latencies,
    /// Answers of the sampled events inside the window, to set against `api`'s count.
    pub sampled_served: usize,
    /// Row latencies of the window's first and last third: a backlog grows from one to the
    /// other.
    pub first_third_p50: Option<f64>,
    pub last_third_p50: Option<f64>,
    /// Snapshots the upstream answered inside the window (all events).
    pub served: usize,
    /// Of those, the ones a realtime row showed.
    pub reached: usize,
}

impl Ledger {
    /// The realtime row of `event` showed the snapshot stamped `observed_ms`: read at
    /// `read_us`, its commit logged at `logged_us`. Later sightings of the same row change
    /// nothing. True when the snapshot is new.
    pub fn row(&mut self, event: &str, observed_ms: i64, read_us: i64, logged_us: i64) -> bool {
        let s = self
            .seen
            .entry((event.to_owned(), observed_ms))
            .or_default();
        if s.row.is_some() {
            return false;
        }
        s.row = Some(read_us);
        s.logged = Some(logged_us);
        true
    }

    /// The API answered the snapshot of `event` stamped `observed_ms` at `at_us`.
    pub fn api(&mut self, event: &str, observed_ms: i64, at_us: i64) {
        let s = self
            .seen
            .entry((event.to_owned(), observed_ms))
            .or_default();
        s.api.get_or_insert(at_us);
    }

    /// The figures of the snapshots answered in `[from_ms, to_ms)`; `served` is every answer
    /// the upstream gave (any time), `sampled` the events whose API answers were watched.
    pub fn window(
        &self,
        from_ms: i64,
        to_ms: i64,
        served: &[Snapshot],
        sampled: &HashSet<String>,
    ) -> Window {
        let inside = |at: i64| (from_ms..to_ms).contains(&at);
        let ms = |us: i64, at: i64| (us - at * 1000) as f64 / 1e3;
        let third = (to_ms - from_ms) / 3;
        let (mut row, mut logged, mut method, mut api) = (vec![], vec![], vec![], vec![]);
        let (mut first, mut last) = (vec![], vec![]);
        for ((_, at), s) in self.seen.iter().filter(|((_, at), _)| inside(*at)) {
            if let (Some(read), Some(log)) = (s.row, s.logged) {
                row.push(ms(read, *at));
                logged.push(ms(log, *at));
                method.push((read - log) as f64 / 1e3);
                if *at < from_ms + third {
                    first.push(ms(read, *at));
                } else if *at >= to_ms - third {
                    last.push(ms(read, *at));
                }
            }
            if let Some(a) = s.api {
                api.push(ms(a, *at));
            }
        }
        let served_inside: Vec<&Snapshot> = served.iter().filter(|(_, at)| inside(*at)).collect();
        let reached = served_inside
            .iter()
            .filter(|s| self.seen.get(*s).is_some_and(|s| s.row.is_some()))
            .count();
        Window {
            row: Latencies::new(row),
            logged: Latencies::new(logged),
            method: Latencies::new(method),
            api: Latencies::new(api),
            sampled_served: served_inside
                .iter()
                .filter(|(e, _)| sampled.contains(e))
                .count(),
            first_third_p50: Latencies::new(first).percentile(0.5),
            last_third_p50: Latencies::new(last).percentile(0.5),
            served: served_inside.len(),
            reached,
        }
    }
}

impl Window {
    /// Whether the pipeline kept up with `expected` answers in the window (services × window
    /// / interval): ingest polled nearly as often as asked, nearly every answer reached its
    /// row (one a later answer overtook inside the same batch never shows, so a few percent
    /// may be missing), and the latency did not grow across the window (a backlog makes the
    /// last third wait longer than the first by the time it has piled up).
    pub fn sustained(&self, expected: f64) -> bool {
        let polled = self.served as f64 >= 0.95 * expected;
        let kept_up = self.reached as f64 >= 0.95 * self.served as f64 && self.served > 0;
        let flat = match (self.first_third_p50, self.last_third_p50) {
            (Some(first), Some(last)) => last <= 1.5 * first + 250.0,
            _ => false,
        };
        polled && kept_up && flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latencies::new((1..=100).rev().map(f64::from).collect());
        assert_eq!(l.percentile(0.5), Some(50.0));
        assert_eq!(l.percentile(0.99), Some(99.0));
        assert_eq!(l.percentile(1.0), Some(100.0));
        assert_eq!(l.percentile(0.0), Some(1.0));
        assert_eq!(l.max(), Some(100.0));
        assert_eq!(Latencies::new(vec![]).percentile(0.5), None);
        assert_eq!(Latencies::new(vec![7.0]).percentile(0.99), Some(7.0));
    }

    #[test]
    fn a_snapshot_is_matched_by_event_and_time_and_counted_once() {
        let mut l = Ledger::default();
        // Answered at 10 000 ms, logged 120 ms later, read 3 ms after that.
        assert!(l.row("a", 10_000, 10_123_000, 10_120_000));
        assert!(!l.row("a", 10_000, 10_500_000, 10_490_000), "a re-read");
        // The same time on another event is another snapshot.
        assert!(l.row("b", 10_000, 10_200_000, 10_199_000));
        l.api("a", 10_000, 10_150_000);
        l.api("a", 10_000, 10_900_000);
        let served = [("a".to_owned(), 10_000), ("b".to_owned(), 10_000)];
        let sampled = HashSet::from(["a".to_owned()]);
        let w = l.window(9_000, 12_000, &served, &sampled);
        assert_eq!(w.row.len(), 2);
        assert_eq!(w.row.percentile(0.5), Some(123.0));
        assert_eq!(w.row.max(), Some(200.0));
        assert_eq!(w.logged.percentile(0.5), Some(120.0));
        assert_eq!(w.method.percentile(1.0), Some(3.0));
        assert_eq!(w.api.len(), 1);
        assert_eq!(
            w.api.percentile(0.5),
            Some(150.0),
            "the first answer counts"
        );
        assert_eq!((w.served, w.reached, w.sampled_served), (2, 2, 1));
    }

    #[test]
    fn only_the_window_counts_and_overtaken_answers_are_not_reached() {
        let mut l = Ledger::default();
        l.row("a", 5_000, 5_100_000, 5_090_000); // before the window
        l.row("a", 10_000, 10_100_000, 10_090_000);
        // 11 000 was overtaken by 11 500 in one batch: its row never showed it.
        l.row("a", 11_500, 11_600_000, 11_590_000);
        let served: Vec<Snapshot> = [5_000, 10_000, 11_000, 11_500, 20_000]
            .into_iter()
            .map(|t| ("a".to_owned(), t))
            .collect();
        let w = l.window(10_000, 12_000, &served, &HashSet::new());
        assert_eq!((w.served, w.reached), (3, 2));
        assert_eq!(w.row.len(), 2);
        assert_eq!(w.api.len(), 0);
        assert_eq!(w.sampled_served, 0);
    }

    #[test]
    fn a_growing_latency_or_missing_rows_is_a_backlog() {
        let mut l = Ledger::default();
        let mut served = vec![];
        // Thirty seconds, one snapshot a second; latency grows by 100 ms a second.
        for s in 0..30 {
            let at = s * 1_000;
            served.push(("a".to_owned(), at));
            let read = (at + 100 + 100 * s) * 1000;
            l.row("a", at, read, read - 1_000);
        }
        let w = l.window(0, 30_000, &served, &HashSet::new());
        assert_eq!((w.served, w.reached), (30, 30));
        assert!(!w.sustained(30.0), "{w:?}");

        let mut steady = Ledger::default();
        for s in 0..30 {
            let read = (s * 1_000 + 150) * 1000;
            steady.row("a", s * 1_000, read, read - 1_000);
        }
        let w = steady.window(0, 30_000, &served, &HashSet::new());
        assert!(w.sustained(30.0), "{w:?}");
        assert!(!w.sustained(60.0), "ingest polled half as often as asked");
        // The same latencies with half of the answers never shown: not kept up.
        let more: Vec<Snapshot> = (0..30)
            .flat_map(|s| [("a".to_owned(), s * 1_000), ("b".to_owned(), s * 1_000)])
            .collect();
        assert!(
            !steady
                .window(0, 30_000, &more, &HashSet::new())
                .sustained(60.0)
        );
    }
}
