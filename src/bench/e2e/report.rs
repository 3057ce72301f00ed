//! The figures of a run: printed as a table, and as Markdown for `--report`.

use std::fmt::Write;
use std::time::Duration;

use super::baseline::RoundTrip;
use super::ledger::{Latencies, Window};
use super::stack::Process;

/// CPU seconds of each worker and of the whole machine.
pub struct Cpu {
    workers: Vec<(&'static str, f64)>,
    /// Busy and total seconds of all cores (from `/proc/stat`).
    machine: (f64, f64),
}

impl Cpu {
    pub fn now(workers: &[Process]) -> anyhow::Result<Self> {
        let workers = workers
            .iter()
            .map(|w| Ok((w.name(), crate::bench::cpu_seconds(w.pid())?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            workers,
            machine: machine()?,
        })
    }

    pub fn since(&self, before: &Self) -> Self {
        Self {
            workers: self
                .workers
                .iter()
                .zip(&before.workers)
                .map(|((name, now), (_, then))| (*name, now - then))
                .collect(),
            machine: (
                self.machine.0 - before.machine.0,
                self.machine.1 - before.machine.1,
            ),
        }
    }
}

/// Busy and total seconds of all cores so far: the first line of `/proc/stat` (USER_HZ ticks;
/// idle and iowait are not busy).
fn machine() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    Ok(((total - idle) / 100.0, total / 100.0))
}

pub struct Report {
    pub services: usize,
    pub interval: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub sampled: usize,
    pub window: Window,
    pub kafka: RoundTrip,
    pub cpu: Cpu,
}

/// One latency line: name, p50, p99, max, samples.
type Line = (String, Option<f64>, Option<f64>, Option<f64>, usize);

fn line(name: impl Into<String>, l: &Latencies) -> Line {
    (
        name.into(),
        l.percentile(0.50),
        l.percentile(0.99),
        l.max(),
        l.len(),
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1} ms"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".into(),
    }
}

impl Report {
    fn secs(&self) -> f64 {
        self.duration.as_secs_f64().max(1e-9)
    }

    /// Answers per second the services are asked for.
    fn target(&self) -> f64 {
        self.services as f64 / self.interval.as_secs_f64()
    }

    fn title(&self) -> String {
        format!(
            "muster bench e2e: {} services polled every {} s + pushed check-ins, {:.0} s measured \
             after {} s warm-up, {} build",
            self.services,
            self.interval.as_secs(),
            self.secs(),
            self.warmup.as_secs(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        )
    }

    fn lines(&self) -> Vec<Line> {
        let w = &self.window;
        vec![
            line("upstream answer → row in PostgreSQL (read)", &w.row),
            line("upstream answer → commit (change log)", &w.logged),
            line(
                format!("upstream answer → API answer ({} events)", self.sampled),
                &w.api,
            ),
            line("method's own delay: commit → read", &w.method),
            line("baseline: Kafka produce → consume", &self.kafka.latencies),
        ]
    }

    fn ratios(&self) -> [(&'static str, String, String); 2] {
        let k = &self.kafka.latencies;
        let (k50, k99) = (k.percentile(0.5), k.percentile(0.99));
        let w = &self.window;
        [
            (
                "row / Kafka round trip",
                ratio(w.row.percentile(0.5), k50),
                ratio(w.row.percentile(0.99), k99),
            ),
            (
                "API / Kafka round trip",
                ratio(w.api.percentile(0.5), k50),
                ratio(w.api.percentile(0.99), k99),
            ),
        ]
    }

    fn throughput(&self) -> String {
        let w = &self.window;
        format!(
            "{:.0} snapshots/s answered upstream, {:.0}/s reached their row (target {:.0}/s); \
             {:.1} % reached ({} of {}; the rest overtaken in a batch or late); API: {} of {} \
             sampled answers seen",
            w.served as f64 / self.secs(),
            w.reached as f64 / self.secs(),
            self.target(),
            100.0 * w.reached as f64 / w.served.max(1) as f64,
            w.reached,
            w.served,
            w.api.len(),
            w.sampled_served,
        )
    }

    fn backlog(&self) -> String {
        let w = &self.window;
        format!(
            "row p50 in the window's first third {}, in its last third {}: {}",
            ms(w.first_third_p50),
            ms(w.last_third_p50),
            if w.sustained(self.target() * self.secs()) {
                "sustained (no backlog)"
            } else {
                "NOT sustained (polls missed, backlog or losses)"
            }
        )
    }

    fn cpu(&self) -> String {
        let pct = |s: f64| 100.0 * s / self.secs();
        let mut out: Vec<String> = self
            .cpu
            .workers
            .iter()
            .map(|(name, s)| format!("{name} {:.0} %", pct(*s)))
            .collect();
        let (busy, total) = self.cpu.machine;
        let cores = total / self.secs();
        out.push(format!(
            "machine {:.0} % busy of {cores:.0} cores",
            100.0 * busy / total.max(1e-9)
        ));
        format!("CPU in the window (% of one core): {}", out.join(", "))
    }

    pub fn print(&self) {
        println!("{}", self.title());
        println!(
            "  {:<46} {:>10} {:>10} {:>10} {:>9}",
            "", "p50", "p99", "max", "samples"
        );
        for (name, p50, p99, max, n) in self.lines() {
            println!(
                "  {name:<46} {:>10} {:>10} {:>10} {n:>9}",
                ms(p50),
                ms(p99),
                ms(max)
            );
        }
        for (name, p50, p99) in self.ratios() {
            println!("  {name:<46} {p50:>10} {p99:>10}");
        }
        println!("  {}", self.throughput());
        println!("  {}", self.backlog());
        println!("  {}", self.cpu());
        println!(
            "  baseline: {} records of {} bytes at {:.0}/s, muster's producer and consumer settings",
            self.kafka.sent, self.kafka.bytes, self.kafka.rate
        );
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "{}\n\n| path | p50 | p99 | max | samples |\n|---|---|---|---|---|\n",
            self.title()
        );
        for (name, p50, p99, max, n) in self.lines() {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {n} |",
                ms(p50),
                ms(p99),
                ms(max)
            );
        }
        for (name, p50, p99) in self.ratios() {
            let _ = writeln!(md, "| {name} | {p50} | {p99} | | |");
        }
        let _ = write!(
            md,
            "\n{}\n\n{}\n\n{}\n",
            self.throughput(),
            self.backlog(),
            self.cpu()
        );
        md
    }
}
