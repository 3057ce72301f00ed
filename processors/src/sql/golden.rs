//! Golden files pin every SQL processor's output, with no Kafka, registry or database: the
//! rows in `golden/<stream>.input.json` go through the query, and `golden/<name>.expected.json`
//! must come out. `muster process test [DIR]` and `cargo test -p muster-processors` both run
//! [`run`]; `--update` (or `UPDATE_GOLDEN=1 cargo test`) rewrites the expected files, to be
//! reviewed like code.

mod diff;
mod skeleton;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use datafusion::arrow::record_batch::RecordBatch;
use muster_schemas::{NormalizedMetrics, RawCheckin, camel_case};

pub use diff::RowDiff;
pub use skeleton::{Created, create};

use super::streams::{self, Stream};
use super::{BUILT_IN, SqlDefinition, SqlProcessor};
use crate::config::ProcessorsConfig;

/// Where SQL files and their `golden/` folder are.
#[derive(Debug, Clone)]
pub enum Folder {
    /// The SQL processors built into this binary, with their golden files.
    BuiltIn,
    /// A folder like those in `processors.sql_dirs`.
    Dir(PathBuf),
}

impl Folder {
    fn sql_files(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        match self {
            Self::BuiltIn => {
                for f in BUILT_IN.files() {
                    if f.path().extension().is_some_and(|e| e == "sql") {
                        let text = f
                            .contents_utf8()
                            .context("a built-in SQL file is not UTF-8")?;
                        out.push((self.show(&f.path().to_string_lossy()), text.to_owned()));
                    }
                }
            }
            Self::Dir(dir) => {
                let entries = std::fs::read_dir(dir)
                    .with_context(|| format!("cannot read the folder {}", dir.display()))?;
                let mut paths: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths {
                    if path.extension().is_some_and(|e| e == "sql") {
                        let text = std::fs::read_to_string(&path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        out.push((path.display().to_string(), text));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// A file under the folder, `None` if it does not exist.
    fn read(&self, rel: &str) -> anyhow::Result<Option<String>> {
        match self {
            Self::BuiltIn => BUILT_IN
                .get_file(rel)
                .map(|f| {
                    f.contents_utf8()
                        .map(str::to_owned)
                        .context("a built-in golden file is not UTF-8")
                })
                .transpose(),
            Self::Dir(dir) => match std::fs::read_to_string(dir.join(rel)) {
                Ok(t) => Ok(Some(t)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", self.show(rel))),
            },
        }
    }

    fn writable(&self) -> anyhow::Result<&Path> {
        match self {
            Self::Dir(dir) => Ok(dir),
            Self::BuiltIn => anyhow::bail!(
                "the built-in processors are compiled into muster: update their golden files \
                 in the source tree with `muster process test processors/sql --update`"
            ),
        }
    }

    fn write(&self, rel: &str, text: &str) -> anyhow::Result<()> {
        let path = self.writable()?.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// How a file under the folder is named in messages.
    fn show(&self, rel: &str) -> String {
        match self {
            Self::BuiltIn => format!("processors/sql/{rel}"),
            Self::Dir(dir) => dir.join(rel).display().to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::BuiltIn => "the built-in SQL processors".to_owned(),
            Self::Dir(dir) => dir.display().to_string(),
        }
    }
}

fn input_file(stream: Stream) -> String {
    format!("golden/{}.input.json", stream.table())
}

fn expected_file(name: &str) -> String {
    format!("golden/{name}.expected.json")
}

/// What `muster process test` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rewrite the expected files from the queries' output instead of comparing.
    pub update: bool,
    /// Only these processors (default: every one in the folder).
    pub only: Vec<String>,
}

/// One processor's result.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub origin: String,
    pub verdict: Verdict,
}

#[derive(Debug)]
pub enum Verdict {
    Passed {
        rows: usize,
    },
    /// `--update` wrote the expected file (`changed`: its rows differ from before).
    Updated {
        rows: usize,
        changed: bool,
    },
    Failed(Failure),
}

#[derive(Debug)]
pub enum Failure {
    Differs(RowDiff),
    /// A golden file is missing: (its path, what to do).
    Missing {
        path: String,
        fix: String,
    },
    /// The file does not parse or plan, or the query fails on the input.
    Broken(String),
}

/// Every processor's outcome, printable as the command's output.
#[derive(Debug)]
pub struct Report {
    pub folder: String,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
            .count()
    }

    pub fn passed(&self) -> bool {
        self.failed() == 0
    }

    /// The outcome of one processor.
    pub fn get(&self, name: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.name == name)
    }
}

/// Runs every SQL processor of `folder` (or those in `opts.only`) against its golden files.
/// Errors only when the folder itself is unusable; each processor's problem is its outcome.
pub async fn run(folder: &Folder, opts: &Options) -> anyhow::Result<Report> {
    if opts.update {
        folder.writable()?;
    }
    let files = folder.sql_files()?;
    anyhow::ensure!(
        !files.is_empty(),
        "no .sql files in {} (`muster process new NAME --input checkins --dir DIR` writes one)",
        folder.describe()
    );
    let mut outcomes = Vec::new();
    for (origin, text) in files {
        let def = SqlDefinition::parse(&origin, &text);
        let name = match &def {
            Ok(d) => d.name.clone(),
            Err(_) => Path::new(&origin)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| origin.clone()),
        };
        if !opts.only.is_empty() && !opts.only.contains(&name) {
            continue;
        }
        let verdict = match def {
            Ok(def) => check(folder, def, opts.update).await,
            Err(e) => Verdict::Failed(Failure::Broken(chain(&e))),
        };
        outcomes.push(Outcome {
            name,
            origin,
            verdict,
        });
    }
    for name in &opts.only {
        anyhow::ensure!(
            outcomes.iter().any(|o| &o.name == name),
            "no SQL processor named {name:?} in {}",
            folder.describe()
        );
    }
    Ok(Report {
        folder: folder.describe(),
        outcomes,
    })
}

async fn check(folder: &Folder, def: SqlDefinition, update: bool) -> Verdict {
    let origin = def.origin.clone();
    let p = match SqlProcessor::new(def, ProcessorsConfig::default().allowed_lateness) {
        Ok(p) => p,
        Err(e) => return Verdict::Failed(Failure::Broken(chain(&e))),
    };
    match compare(folder, &p, update).await {
        Ok(v) => v,
        Err(e) => Verdict::Failed(Failure::Broken(format!("{origin}: {}", chain(&e)))),
    }
}

async fn compare(folder: &Folder, p: &SqlProcessor, update: bool) -> anyhow::Result<Verdict> {
    let input_rel = input_file(p.def.input);
    let input = match folder.read(&input_rel)? {
        Some(text) => text,
        None if update => {
            let sample = Folder::BuiltIn
                .read(&input_rel)?
                .context("the built-in sample input is missing")?;
            folder.write(&input_rel, &sample)?;
            sample
        }
        None => {
            return Ok(Verdict::Failed(Failure::Missing {
                path: folder.show(&input_rel),
                fix: format!(
                    "write {} input rows there, or run with --update to start from the \
                     built-in sample (then review it)",
                    p.def.input.table()
                ),
            }));
        }
    };
    let batch = input_batch(p.def.input, &input)
        .with_context(|| format!("reading {}", folder.show(&input_rel)))?;
    let got = p.rows_as_json(&p.query(batch).await?)?;
    // The derived Avro schema must parse, as the registry will parse it.
    apache_avro::Schema::parse_str(p.avro_schema()).context("the derived Avro schema")?;
    let expected_rel = expected_file(&p.def.name);
    let expected = folder
        .read(&expected_rel)?
        .map(|t| {
            serde_json::from_str::<Vec<serde_json::Value>>(&t)
                .with_context(|| format!("{} is not a JSON array", folder.show(&expected_rel)))
        })
        .transpose()?;
    if update {
        let changed = expected.as_ref() != Some(&got);
        if changed {
            folder.write(&expected_rel, &(serde_json::to_string_pretty(&got)? + "\n"))?;
        }
        return Ok(Verdict::Updated {
            rows: got.len(),
            changed,
        });
    }
    let Some(expected) = expected else {
        return Ok(Verdict::Failed(Failure::Missing {
            path: folder.show(&expected_rel),
            fix: "run with --update to write the query's current output there, then review it"
                .to_owned(),
        }));
    };
    let columns: Vec<String> = p
        .output_arrow_schema()
        .fields()
        .iter()
        .map(|f| camel_case(f.name()))
        .collect();
    let diff = RowDiff::new(&columns, &expected, &got);
    Ok(if diff.is_empty() {
        Verdict::Passed { rows: got.len() }
    } else {
        Verdict::Failed(Failure::Differs(diff))
    })
}

/// A golden input file (topic records as JSON, as in the built-in samples) as an Arrow batch.
fn input_batch(stream: Stream, text: &str) -> anyhow::Result<RecordBatch> {
    match stream {
        Stream::Checkins => {
            streams::checkins_batch(&serde_json::from_str::<Vec<RawCheckin>>(text)?)
        }
        Stream::Normalized => {
            streams::normalized_batch(&serde_json::from_str::<Vec<NormalizedMetrics>>(text)?)
        }
    }
}

/// An error and its causes on one line, without the repeats of libraries (DataFusion) whose
/// messages already include their source's.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .outcomes
            .iter()
            .map(|o| o.name.len())
            .max()
            .unwrap_or(0);
        let (mut passed, mut updated) = (0, 0);
        for o in &self.outcomes {
            let name = &o.name;
            match &o.verdict {
                Verdict::Passed { rows } => {
                    passed += 1;
                    writeln!(f, "ok      {name:<width$}  {rows} row{}", plural(*rows))?;
                }
                Verdict::Updated { rows, changed } => {
                    updated += 1;
                    let what = if *changed { "rewritten" } else { "unchanged" };
                    writeln!(
                        f,
                        "update  {name:<width$}  {rows} row{}, expected file {what}",
                        plural(*rows)
                    )?;
                }
                Verdict::Failed(failure) => {
                    writeln!(f, "FAIL    {name:<width$}  {}", o.origin)?;
                    match failure {
                        Failure::Differs(d) => write!(f, "{d}")?,
                        Failure::Missing { path, fix } => {
                            writeln!(f, "    {path} is missing: {fix}")?
                        }
                        Failure::Broken(e) => writeln!(f, "    {e}")?,
                    }
                }
            }
        }
        let mut summary = vec![];
        if updated > 0 {
            summary.push(format!("{updated} updated"));
        }
        if passed > 0 || updated == 0 {
            summary.push(format!("{passed} passed"));
        }
        summary.push(format!("{} failed", self.failed()));
        write!(f, "{}", summary.join(", "))
    }
}
