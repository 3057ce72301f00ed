//! `muster bench analytics`: the attendance pattern query (type × local weekday × local hour
//! with the previous period, on DataFusion) over a generated Parquet archive of normalized
//! observations, against a plain DataFusion `COUNT(*) … GROUP BY event_id` scan of the same
//! files in the same run. Both read the same rows; the ratio is what the pattern's arithmetic
//! (hour averages, time zones, two periods, the catalogue join) costs over a bare scan.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use muster_analytics::insights::patterns::{Source, sql};
use muster_projections::archive::rows::Located;
use muster_schemas::{NormalizedMetrics, SourceOffset};

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events in the generated archive (spread over the last `days`).
    #[arg(long, default_value_t = 1_000)]
    events: usize,
    /// Hours each event lasts.
    #[arg(long, default_value_t = 10)]
    hours: usize,
    /// Observations per event-hour (one a minute by default, a poll interval of 60 s).
    #[arg(long, default_value_t = 60)]
    per_hour: usize,
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Timed runs of each query (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the archive is written (a fresh temporary folder by default; kept if given).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const TYPES: [(&str, i32); 3] = [("conference", 540), ("festival", -300), ("exhibition", 60)];

pub async fn run(args: Args, _cfg: Config) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "muster-bench-analytics-{:08x}",
            rand::random::<u32>()
        )),
    };
    let now = Utc::now();
    let started = Instant::now();
    let mut rows = 0usize;
    let mut files = 0usize;
    let mut offset = 0i64;
    let (mut ids, mut kinds, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    for e in 0..args.events {
        let id = format!("bench-{e:05}");
        let (kind, tz) = TYPES[e % TYPES.len()];
        let start = now - chrono::Duration::days(1 + (e as i64 * args.days) / args.events as i64)
            + chrono::Duration::hours((e % 7) as i64);
        let mut batch = Vec::with_capacity(args.hours * args.per_hour);
        for h in 0..args.hours {
            for m in 0..args.per_hour {
                let at = start
                    + chrono::Duration::hours(h as i64)
                    + chrono::Duration::seconds((m * 3600 / args.per_hour) as i64);
                let rate = ((e * 31 + h * 7 + m) % 100) as f64 / 100.0;
                batch.push(Located {
                    partition: 0,
                    offset,
                    record: NormalizedMetrics {
                        event_id: id.clone(),
                        timestamp: at.timestamp_millis(),
                        fetched_at: at.timestamp_millis(),
                        total_registered: 1000,
                        current_attendees: (rate * 1000.0) as i64,
                        checked_in: 0,
                        checked_out: 0,
                        attendance_rate: rate,
                        gate_activity: vec![],
                        alerts: vec![],
                        status: "live".into(),
                        source: SourceOffset {
                            topic: "muster.raw.snapshots.v1".into(),
                            partition: 0,
                            offset,
                        },
                        capacity: None,
                    },
                });
                offset += 1;
            }
        }
        rows += batch.len();
        for f in muster_projections::archive::files::encode(batch)? {
            let path = dir.join(&f.path);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))?;
            std::fs::write(&path, f.bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            files += 1;
        }
        ids.push(id);
        kinds.push(kind);
        offsets.push(tz);
    }
    println!(
        "archive: {rows} normalized observations of {} events in {files} Parquet files under {} (written in {:.1} s)",
        args.events,
        dir.display(),
        started.elapsed().as_secs_f64()
    );

    let ctx = SessionContext::new();
    muster_analytics::register_archive(&ctx, &format!("file://{}/", dir.display())).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("utc_offset_minutes", DataType::Int32, true),
    ]));
    let catalogue = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(kinds)),
            Arc::new(Int32Array::from(offsets)),
        ],
    )?;
    ctx.register_table(
        "event_catalogue",
        Arc::new(MemTable::try_new(schema, vec![vec![catalogue]])?),
    )?;

    let from = now - chrono::Duration::days(args.days);
    let pattern = sql(Source::Archive, from, now);
    let baseline = "SELECT event_id, count(*) AS n FROM archive_normalized GROUP BY event_id";
    let (base_t, base_rows) = time(&ctx, baseline, args.runs).await?;
    let (pat_t, pat_rows) = time(&ctx, &pattern, args.runs).await?;
    let rate = |t: Duration| rows as f64 / t.as_secs_f64();
    println!(
        "baseline  COUNT(*) GROUP BY event_id: median {:>8.1} ms, {:>12.0} rows/s ({base_rows} groups)",
        base_t.as_secs_f64() * 1e3,
        rate(base_t)
    );
    println!(
        "pattern   type × weekday × hour, 2 periods: median {:>8.1} ms, {:>12.0} rows/s ({pat_rows} cells)",
        pat_t.as_secs_f64() * 1e3,
        rate(pat_t)
    );
    println!(
        "pattern / baseline: {:.1} % of the plain scan's rows/s",
        100.0 * rate(pat_t) / rate(base_t)
    );
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// One warm-up, then the median of `runs` timed collections; and the answer's row count.
async fn time(ctx: &SessionContext, sql: &str, runs: usize) -> anyhow::Result<(Duration, usize)> {
    let n: usize = ctx
        .sql(sql)
        .await?
        .collect()
        .await?
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        ctx.sql(sql).await?.collect().await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], n))
}
