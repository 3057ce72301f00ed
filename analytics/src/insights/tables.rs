//! The `insight_*` tables: each run replaces them in one transaction, so readers see one run's
//! figures whole. Rows go in and come out as JSON (`jsonb_populate_recordset`, `to_jsonb`), with
//! the columns named as the structs' fields in snake_case.

use anyhow::Context;
use chrono::{DateTime, Utc};
use muster_runtime::migrate::Migrations;
use muster_schemas::camel_case;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Report;
use super::behaviour::Bin;
use super::forecast::{Backtest, Forecast};
use super::outcomes::Outcome;
use super::patterns::Pattern;
use super::recommend::Recommendation;
use super::roi::Roi;

/// The tables analysts and the API read (`insight_outcomes` is the runs' memory, and readable too).
pub const TABLES: [&str; 7] = [
    "insight_runs",
    "insight_patterns",
    "insight_behaviour",
    "insight_outcomes",
    "insight_forecasts",
    "insight_roi",
    "insight_recommendations",
];

/// What a partner's SQL reads instead of a column that names other events (table, column,
/// expression): the same redaction as [`Forecast::redacted`] and [`Recommendation::redacted`]
/// in the HTTP routes, since the similar past events may be other partners'.
pub const PARTNER_REDACTIONS: [(&str, &str, &str); 2] = [
    (
        "insight_forecasts",
        "detail",
        "jsonb_set(detail, '{similarEvents}', '[]'::jsonb)",
    ),
    (
        "insight_recommendations",
        "evidence",
        "evidence - 'similarEvents'",
    ),
];

pub static MIGRATIONS: Migrations = Migrations {
    component: "insights",
    steps: &[
        "CREATE TABLE insight_runs (
            run_id bigserial PRIMARY KEY,
            computed_at timestamptz NOT NULL,
            range_from timestamptz NOT NULL,
            took_ms bigint NOT NULL,
            events bigint NOT NULL,
            forecasts bigint NOT NULL,
            backtest_events bigint NOT NULL,
            backtest_mape double precision,
            backtest_interval_coverage double precision,
            backtest_by_type jsonb NOT NULL);
        CREATE TABLE insight_patterns (
            event_type text NOT NULL,
            day_of_week int NOT NULL,
            hour_of_day int NOT NULL,
            average_attendance_rate double precision NOT NULL,
            stddev_attendance_rate double precision,
            samples bigint NOT NULL,
            events bigint NOT NULL,
            previous_average_attendance_rate double precision,
            previous_samples bigint NOT NULL,
            change double precision,
            PRIMARY KEY (event_type, day_of_week, hour_of_day));
        CREATE TABLE insight_behaviour (
            scope text NOT NULL,
            subject text NOT NULL,
            measure text NOT NULL,
            bucket bigint NOT NULL,
            label text NOT NULL,
            participants bigint NOT NULL,
            PRIMARY KEY (scope, subject, measure, bucket));
        CREATE TABLE insight_outcomes (
            event_id text PRIMARY KEY,
            event_type text NOT NULL,
            capacity bigint,
            starts_at timestamptz,
            ends_at timestamptz,
            utc_offset_minutes int NOT NULL,
            ticket_price double precision,
            cost_total double precision,
            currency text,
            registered bigint,
            checked_in bigint,
            peak_attendees bigint,
            peak_entries_per_minute bigint,
            peak_at timestamptz,
            peak_gate_entries_per_minute bigint,
            gates_used bigint,
            gates_open bigint);
        CREATE TABLE insight_forecasts (
            event_id text PRIMARY KEY,
            event_type text NOT NULL,
            phase text NOT NULL,
            registered bigint NOT NULL,
            show_up_rate double precision NOT NULL,
            show_up_rate_low double precision NOT NULL,
            show_up_rate_high double precision NOT NULL,
            final_attendance double precision NOT NULL,
            final_attendance_low double precision NOT NULL,
            final_attendance_high double precision NOT NULL,
            peak_entries_per_minute double precision,
            peak_at timestamptz,
            gates_needed bigint,
            gates_open bigint,
            backtest_mape double precision,
            detail jsonb NOT NULL);
        CREATE TABLE insight_roi (
            scope text NOT NULL,
            subject text NOT NULL,
            event_type text NOT NULL,
            currency text,
            events bigint NOT NULL,
            complete boolean NOT NULL,
            registered bigint NOT NULL,
            attendees bigint NOT NULL,
            revenue double precision,
            cost double precision,
            profit double precision,
            roi double precision,
            cost_per_attendee double precision,
            revenue_per_attendee double precision);
        CREATE UNIQUE INDEX ON insight_roi (scope, subject, coalesce(currency, ''));
        CREATE TABLE insight_recommendations (
            event_id text NOT NULL,
            kind text NOT NULL,
            message text NOT NULL,
            evidence jsonb NOT NULL);
        CREATE INDEX ON insight_recommendations (event_id)",
        "ALTER TABLE insight_patterns ADD COLUMN previous_events bigint NOT NULL DEFAULT 0;
         ALTER TABLE insight_outcomes ADD COLUMN other_income double precision;
         ALTER TABLE insight_roi ADD COLUMN other_income double precision",
    ],
};

fn snake(key: &str) -> String {
    let mut s = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn rekey(v: Value, f: fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (f(&k), v))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

/// Rows as a JSON array keyed by column (snake_case).
fn rows<T: Serialize>(items: &[T]) -> anyhow::Result<Value> {
    Ok(Value::Array(
        items
            .iter()
            .map(|i| Ok(rekey(serde_json::to_value(i)?, snake)))
            .collect::<anyhow::Result<_>>()?,
    ))
}

async fn replace<T: Serialize>(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    items: &[T],
) -> anyhow::Result<()> {
    tx.execute(&format!("DELETE FROM {table}"), &[]).await?;
    tx.execute(
        &format!("INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1)"),
        &[&rows(items)?],
    )
    .await
    .with_context(|| format!("writing {table}"))?;
    Ok(())
}

/// Replaces every insight table with `report`'s figures, in one transaction.
pub async fn write(
    client: &mut tokio_postgres::Client,
    report: &Report,
    took_ms: i64,
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    replace(&tx, "insight_patterns", &report.patterns).await?;
    replace(&tx, "insight_behaviour", &report.behaviour).await?;
    replace(&tx, "insight_outcomes", &report.outcomes).await?;
    replace(&tx, "insight_roi", &report.roi).await?;
    replace(&tx, "insight_recommendations", &report.recommendations).await?;
    tx.execute("DELETE FROM insight_forecasts", &[]).await?;
    let insert = tx
        .prepare(
            "INSERT INTO insight_forecasts VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 $12, $13, $14, $15, $16)",
        )
        .await?;
    for f in &report.forecasts {
        tx.execute(
            &insert,
            &[
                &f.event_id,
                &f.event_type,
                &f.phase,
                &f.registered,
                &f.show_up_rate.expected,
                &f.show_up_rate.low,
                &f.show_up_rate.high,
                &f.final_attendance.expected,
                &f.final_attendance.low,
                &f.final_attendance.high,
                &f.peak_entries_per_minute,
                &f.peak_at,
                &f.gates_needed,
                &f.gates_open,
                &f.backtest.mape,
                &serde_json::to_value(f)?,
            ],
        )
        .await
        .context("writing insight_forecasts")?;
    }
    tx.execute(
        "INSERT INTO insight_runs (computed_at, range_from, took_ms, events, forecasts,
             backtest_events, backtest_mape, backtest_interval_coverage, backtest_by_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &report.computed_at,
            &report.from,
            &took_ms,
            &(report.outcomes.len() as i64),
            &(report.forecasts.len() as i64),
            &(report.backtest.events as i64),
            &report.backtest.mape,
            &report.backtest.interval_coverage,
            &serde_json::to_value(&report.backtest_by_type)?,
        ],
    )
    .await?;
    // Runs are small; a day of them at the default pace is plenty to look back on.
    tx.execute(
        "DELETE FROM insight_runs WHERE run_id <= (SELECT max(run_id) - 100 FROM insight_runs)",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Rows whose first column is a JSON object, keyed by column (snake_case), as `T`.
async fn read<T: DeserializeOwned>(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> anyhow::Result<Vec<T>> {
    read_with(client, sql, params, |v| rekey(v, camel_case)).await
}

/// Like `read`, with `fix` applied to each object before it is read as `T`.
async fn read_with<T: DeserializeOwned>(
    client: &impl tokio_postgres::GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    fix: fn(Value) -> Value,
) -> anyhow::Result<Vec<T>> {
    client
        .query(sql, params)
        .await
        .context("reading insights")?
        .iter()
        .map(|r| Ok(serde_json::from_value(fix(r.get::<_, Value>(0)))?))
        .collect()
}

/// Outcomes of earlier runs (their fields are snake_case already).
pub async fn known_outcomes(
    client: &impl tokio_postgres::GenericClient,
) -> anyhow::Result<Vec<Outcome>> {
    read_with(
        client,
        "SELECT to_jsonb(o) FROM insight_outcomes o",
        &[],
        |v| v,
    )
    .await
}

/// The latest run: when, and the backtest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub computed_at: DateTime<Utc>,
    pub backtest: Backtest,
}

pub async fn latest_run(
    client: &impl tokio_postgres::GenericClient,
) -> anyhow::Result<Option<Run>> {
    let row = client
        .query_opt(
            "SELECT computed_at, backtest_events, backtest_mape, backtest_interval_coverage
             FROM insight_runs ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.map(|r| Run {
        computed_at: r.get(0),
        backtest: Backtest {
            events: r.get::<_, i64>(1) as usize,
            mape: r.get(2),
            interval_coverage: r.get(3),
        },
    }))
}

pub async fn patterns(
    client: &impl tokio_postgres::GenericClient,
    event_type: Option<&str>,
    min_events: i64,
) -> anyhow::Result<Vec<Pattern>> {
    let mut rows: Vec<Pattern> = read(
        client,
        "SELECT to_jsonb(p) FROM insight_patterns p
         WHERE ($1::text IS NULL OR event_type = $1) AND events >= $2
         ORDER BY event_type, day_of_week, hour_of_day",
        &[&event_type, &min_events],
    )
    .await?;
    // The trend's other side follows the same rule.
    for p in &mut rows {
        if p.previous_events < min_events {
            p.previous_average_attendance_rate = None;
            p.previous_samples = 0;
            p.previous_events = 0;
            p.change = None;
        }
    }
    Ok(rows)
}

/// Forecasts of `events` (all when none).
pub async fn forecasts(
    client: &impl tokio_postgres::GenericClient,
    events: Option<&[String]>,
) -> anyhow::Result<Vec<Forecast>> {
    // `detail` holds the forecast as served (camelCase already).
    read_with(
        client,
        "SELECT detail FROM insight_forecasts
         WHERE $1::text[] IS NULL OR event_id = ANY($1) ORDER BY event_id",
        &[&events],
        |v| v,
    )
    .await
}

pub async fn recommendations(
    client: &impl tokio_postgres::GenericClient,
    events: Option<&[String]>,
) -> anyhow::Result<Vec<Recommendation>> {
    read(
        client,
        "SELECT to_jsonb(r) FROM insight_recommendations r
         WHERE $1::text[] IS NULL OR event_id = ANY($1) ORDER BY event_id, kind",
        &[&events],
    )
    .await
}

/// Behaviour bins of `events` (event scope only).
pub async fn behaviour(
    client: &impl tokio_postgres::GenericClient,
    events: &[String],
) -> anyhow::Result<Vec<Bin>> {
    read(
        client,
        "SELECT to_jsonb(b) FROM insight_behaviour b
         WHERE scope = 'event' AND subject = ANY($1) ORDER BY subject, measure, bucket",
        &[&events],
    )
    .await
}

/// ROI of `events` (all when none); the types' rows only for all.
pub async fn roi(
    client: &impl tokio_postgres::GenericClient,
    events: Option<&[String]>,
) -> anyhow::Result<Vec<Roi>> {
    read(
        client,
        "SELECT to_jsonb(r) FROM insight_roi r
         WHERE ($1::text[] IS NULL OR (scope = 'event' AND subject = ANY($1)))
         ORDER BY scope, subject, currency",
        &[&events],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_between_cases() {
        assert_eq!(snake("peakEntriesPerMinute"), "peak_entries_per_minute");
        assert_eq!(camel_case(&snake("dayOfWeek")), "dayOfWeek");
    }
}
