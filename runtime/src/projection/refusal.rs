//! Telling *the record is bad* from *the system is down*. A batch refused for a data reason is
//! split in halves until each refusal is pinned on one record ([`bisect`]): that record is
//! dead-lettered and the rest applies, so one bad record never stalls the others. Anything else
//! fails the batch, which is retried whole.

use std::ops::Range;

use async_trait::async_trait;

use super::Rejected;

/// Why applying records failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The records themselves are refused: the same records fail the same way every time.
    Data,
    /// The connection, a conflict, a timeout, or a bug: the batch is retried. Unknown errors
    /// land here, so a bug stops a projection instead of dead-lettering everything.
    Transient,
}

/// A SQLSTATE's fault: class 22 (data exception: NUL or untranslatable characters, numbers and
/// times out of range), class 23 (integrity constraint violation) and 54000 (a value too large
/// for a row or an index) are the record's; connection (08), rollback (40: serialization
/// failure, deadlock), resources (53), operator intervention (57: statement timeout,
/// shutdown) and everything else are retried.
pub fn classify(sqlstate: &str) -> Fault {
    match sqlstate.get(..2) {
        Some("22" | "23") => Fault::Data,
        _ if sqlstate == "54000" => Fault::Data,
        _ => Fault::Transient,
    }
}

/// A projection's own refusal of a batch's values (e.g. a sum past `bigint`), isolated like
/// PostgreSQL's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadData(pub String);

/// The reason to dead-letter with when `e` is a data refusal (PostgreSQL's message and
/// SQLSTATE), `None` when it must be retried.
pub fn data_reason(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(bad) = cause.downcast_ref::<BadData>() {
            return Some(bad.0.clone());
        }
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            let db = pg.as_db_error()?;
            let code = db.code().code();
            return (classify(code) == Fault::Data)
                .then(|| format!("{} (SQLSTATE {code})", db.message()));
        }
    }
    None
}

/// Applies a range of a batch's records, leaving nothing behind when it fails (a savepoint).
#[async_trait]
pub trait Attempt: Send {
    /// The records it rejects itself, indexed within `range`.
    async fn attempt(&mut self, range: Range<usize>) -> anyhow::Result<Vec<Rejected>>;
}

/// Applies records `0..len` through `a`. A range refused for a data reason is split in
/// halves, the first applied before the second so order is kept, down to single records,
/// which are returned as rejected with the reason; so are the records `a` rejects itself.
/// Any other error ends it.
pub async fn bisect(len: usize, a: &mut impl Attempt) -> anyhow::Result<Vec<Rejected>> {
    let mut rejected = Vec::new();
    // A stack: the first half is pushed last, so it is applied first.
    let mut todo: Vec<Range<usize>> = Vec::new();
    if len > 0 {
        todo.push(0..len);
    }
    while let Some(range) = todo.pop() {
        match a.attempt(range.clone()).await {
            Ok(own) => rejected.extend(own.into_iter().map(|r| Rejected {
                index: range.start + r.index,
                ..r
            })),
            Err(e) => match data_reason(&e) {
                None => return Err(e),
                Some(reason) if range.len() == 1 => rejected.push(Rejected {
                    index: range.start,
                    reason,
                    event_id: None,
                }),
                Some(_) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            },
        }
    }
    rejected.sort_by_key(|r| r.index);
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_exceptions_are_the_records_and_the_rest_is_retried() {
        for code in [
            "22P05", // untranslatable character (NUL in jsonb)
            "22021", // invalid byte sequence (NUL in text)
            "22003", // numeric value out of range
            "22008", // datetime field overflow / timestamp out of range
            "22007", // invalid datetime format
            "23505", // unique violation
            "23502", // not null violation
            "23514", // check violation
            "54000", // index row size exceeded
        ] {
            assert_eq!(classify(code), Fault::Data, "{code}");
        }
        for code in [
            "40001", // serialization failure
            "40P01", // deadlock
            "57014", // statement timeout / query canceled
            "57P01", // admin shutdown
            "08006", // connection failure
            "08003", // connection does not exist
            "53300", // too many connections
            "53100", // disk full
            "55P03", // lock not available
            "42P01", // undefined table: a bug or a missing migration, not the record
            "42804", // datatype mismatch: the query's, not the value's
            "XX000", // internal error
        ] {
            assert_eq!(classify(code), Fault::Transient, "{code}");
        }
    }

    #[test]
    fn only_data_refusals_have_a_reason() {
        let bad = anyhow::Error::new(BadData("entries past bigint".into())).context("projection");
        assert_eq!(data_reason(&bad).as_deref(), Some("entries past bigint"));
        assert_eq!(data_reason(&anyhow::anyhow!("connection reset")), None);
    }

    /// A fake apply that refuses any range holding a "bad" record, fails on "down", and
    /// rejects "undecodable" ones itself; it records what applied.
    struct Fake<'a> {
        records: &'a [&'a str],
        applied: Vec<usize>,
        attempts: usize,
    }

    #[async_trait]
    impl Attempt for Fake<'_> {
        async fn attempt(&mut self, r: Range<usize>) -> anyhow::Result<Vec<Rejected>> {
            self.attempts += 1;
            let slice = &self.records[r.clone()];
            if slice.contains(&"down") {
                anyhow::bail!("connection reset");
            }
            if let Some(bad) = slice.iter().find(|s| s.starts_with("bad")) {
                return Err(BadData(format!("{bad} refused")).into());
            }
            let records = self.records;
            self.applied
                .extend(r.clone().filter(|i| records[*i] != "undecodable"));
            Ok(slice
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == "undecodable")
                .map(|(index, _)| Rejected {
                    index,
                    reason: "undecodable".into(),
                    event_id: None,
                })
                .collect())
        }
    }

    fn run(records: &[&str]) -> (anyhow::Result<Vec<Rejected>>, Vec<usize>, usize) {
        let mut fake = Fake {
            records,
            applied: Vec::new(),
            attempts: 0,
        };
        let result = futures::executor::block_on(bisect(records.len(), &mut fake));
        (result, fake.applied, fake.attempts)
    }

    #[test]
    fn bad_records_are_isolated_and_every_good_one_applies_in_order() {
        let records = [
            "a",
            "b",
            "bad1",
            "c",
            "undecodable",
            "d",
            "e",
            "f",
            "bad2",
            "g",
        ];
        let (result, applied, _) = run(&records);
        let rejected = result.unwrap();
        let got: Vec<(usize, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [(2, "bad1 refused"), (4, "undecodable"), (8, "bad2 refused")]
        );
        assert_eq!(
            applied,
            [0, 1, 3, 5, 6, 7, 9],
            "every good record, in order"
        );
    }

    #[test]
    fn a_clean_batch_is_one_attempt_and_an_empty_one_none() {
        let (result, applied, attempts) = run(&["a", "b", "c"]);
        assert!(result.unwrap().is_empty());
        assert_eq!((applied, attempts), (vec![0, 1, 2], 1));
        let (result, _, attempts) = run(&[]);
        assert!(result.unwrap().is_empty());
        assert_eq!(attempts, 0);
    }

    #[test]
    fn a_transient_fault_fails_the_whole_batch() {
        let (result, _, _) = run(&["a", "bad", "down", "b"]);
        assert_eq!(result.unwrap_err().to_string(), "connection reset");
    }
}
