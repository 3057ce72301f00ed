//! `muster process new`: a commented SQL processor that works as written, with golden files,
//! so `muster process test DIR` passes before the first edit.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Folder, Options, Verdict, expected_file, input_file, run};
use crate::sql::{BUILT_IN, SqlDefinition, Stream};

/// What [`create`] wrote.
#[derive(Debug)]
pub struct Created {
    pub sql: PathBuf,
    /// The stream's sample input, when the folder had no input for it yet.
    pub input: Option<PathBuf>,
    pub expected: PathBuf,
    pub rows: usize,
}

/// Writes `DIR/NAME.sql` and its golden files; refuses a bad name or an existing file.
pub async fn create(dir: &Path, name: &str, input: Stream) -> anyhow::Result<Created> {
    check_name(name)?;
    let built_in = BUILT_IN
        .files()
        .filter_map(|f| f.contents_utf8())
        .filter_map(|t| SqlDefinition::parse("built-in", t).ok())
        .any(|d| d.name == name);
    anyhow::ensure!(
        !built_in,
        "{name:?} is the name of a built-in processor; choose another"
    );
    let sql = dir.join(format!("{name}.sql"));
    let expected = dir.join(expected_file(name));
    for path in [&sql, &expected] {
        anyhow::ensure!(
            !path.exists(),
            "{} already exists; remove it or choose another name",
            path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let input_path = dir.join(input_file(input));
    let had_input = input_path.exists();
    std::fs::write(&sql, text(name, input))
        .with_context(|| format!("writing {}", sql.display()))?;
    // `--update` for this one processor copies the sample input if needed and writes its rows.
    let folder = Folder::Dir(dir.to_owned());
    let report = run(
        &folder,
        &Options {
            update: true,
            only: vec![name.to_owned()],
        },
    )
    .await?;
    let rows = match report.get(name).map(|o| &o.verdict) {
        Some(Verdict::Updated { rows, .. }) => *rows,
        _ => anyhow::bail!("the skeleton did not run:\n{report}"),
    };
    Ok(Created {
        sql,
        input: (!had_input).then_some(input_path),
        expected,
        rows,
    })
}

/// Names become table, consumer-group and topic names: lower-case words joined by `_`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(
        ok,
        "{name:?} is not a processor name: use a lower-case letter, then lower-case letters, \
         digits and '_' (e.g. re_entries_10m)"
    );
    Ok(())
}

/// The skeleton. Header comments carry no `:` beyond the metadata lines, since the header
/// parser reads every `-- key: value` line before the query.
fn text(name: &str, input: Stream) -> String {
    let topic = format!("muster.windows.{}.v1", name.replace('_', "-"));
    let (description, columns, query) = match input {
        Stream::Checkins => (
            "entries and exits per gate per 10 minutes (event time), partial counts per micro-batch",
            "--   event_id, gate_id, participant (a pseudonym), direction ('in' or 'out'),\n\
             --   scanned_at (event time) and received_at (when muster received it).",
            "SELECT
    event_id,
    gate_id,
    date_bin(INTERVAL '10 minutes', scanned_at) AS window_start,
    date_bin(INTERVAL '10 minutes', scanned_at) + INTERVAL '10 minutes' AS window_end,
    CAST(sum(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS BIGINT) AS entries,
    CAST(sum(CASE WHEN direction = 'out' THEN 1 ELSE 0 END) AS BIGINT) AS exits
FROM checkins
GROUP BY event_id, gate_id, date_bin(INTERVAL '10 minutes', scanned_at)
ORDER BY event_id, gate_id, window_start
",
        ),
        Stream::Normalized => (
            "attendance per event per 15 minutes, samples and peak, partial per micro-batch",
            "--   event_id, observed_at (event time), fetched_at (when muster fetched it),\n\
             --   total_registered, current_attendees, checked_in, checked_out,\n\
             --   attendance_rate (0 to 1) and status.",
            "SELECT
    event_id,
    date_bin(INTERVAL '15 minutes', observed_at) AS window_start,
    date_bin(INTERVAL '15 minutes', observed_at) + INTERVAL '15 minutes' AS window_end,
    count(*) AS samples,
    max(current_attendees) AS peak_attendees,
    max(total_registered) AS registered
FROM normalized
GROUP BY event_id, date_bin(INTERVAL '15 minutes', observed_at)
ORDER BY event_id, window_start
",
        ),
    };
    let table = input.table();
    format!(
        "-- name: {name}
-- description: {description}
-- input: {table}
-- output: {topic}
--
-- The query runs (DataFusion SQL) on each micro-batch of the {table} stream, as a table
-- named {table} with the columns
{columns}
-- A batch holds only part of a window, so emit partial aggregates (counts, sums, max, min)
-- with window_start and window_end in every row; whatever reads the topic merges the
-- partials of a window. The event_id column becomes the Kafka key.
--
-- Check it with `muster process test <this folder>`. After changing the query, review the
-- difference it prints; `muster process test <this folder> --update` then rewrites
-- golden/{name}.expected.json. A running processor's output may only gain nullable
-- columns; for any other change, write a new topic (.v2).
{query}"
    )
}
