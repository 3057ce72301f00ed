//! The Kafka Streams side: the Maven project in `bench/kafka-streams/`, built when its jar is
//! missing, run as a child JVM per measurement.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::Job;

/// How to start the application: the launcher, the jar and what every run shares.
pub struct Java {
    pub launcher: PathBuf,
    pub jar: PathBuf,
    pub bootstrap: String,
    pub registry: String,
    pub allowed_lateness: Duration,
    /// Folder of the runs' state directories and logs, removed with the bench's topics.
    pub scratch: PathBuf,
}

/// The schema ids the application writes with: muster registered them, so both sides' outputs
/// carry the same ids.
pub struct SchemaIds {
    pub output: u32,
    pub dead_letter: u32,
}

/// The jar of `project`, built with Maven first if it is missing.
pub fn jar(project: &Path) -> anyhow::Result<PathBuf> {
    let jar = project.join("target/muster-kstreams-bench.jar");
    if jar.exists() {
        return Ok(jar);
    }
    let command = format!("(cd {} && mvn -q -B package)", project.display());
    eprintln!("building the Kafka Streams application: {command} ...");
    let status = Command::new("mvn")
        .args(["-q", "-B", "package"])
        .current_dir(project)
        .status()
        .with_context(|| format!("running Maven; build the jar by hand: {command}"))?;
    anyhow::ensure!(
        status.success() && jar.exists(),
        "Maven failed ({status}); build the jar by hand: {command}"
    );
    Ok(jar)
}

/// A running application, stopped (and its state removed) when dropped.
pub struct App {
    child: Child,
    log: PathBuf,
    state: PathBuf,
    running: tokio::sync::oneshot::Receiver<()>,
}

impl Java {
    pub fn start(
        &self,
        job: Job,
        name: &str,
        input: &str,
        output: &str,
        ids: &SchemaIds,
    ) -> anyhow::Result<App> {
        let state = self.scratch.join(name);
        let log = self.scratch.join(format!("{name}.log"));
        std::fs::create_dir_all(&state)?;
        let mut child = Command::new(&self.launcher)
            .args([
                "-Xmx1g",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-jar",
            ])
            .arg(&self.jar)
            .args(["--job", job.java_name()])
            .args(["--bootstrap", &self.bootstrap])
            .args(["--registry", &self.registry])
            .args(["--application-id", name])
            .arg("--state-dir")
            .arg(&state)
            .args(["--input", input])
            .args(["--output", output])
            // As `drain` does for muster: every output of a run, dead letters too, on one topic.
            .args(["--dead-letters", output])
            .args(["--output-schema-id", &ids.output.to_string()])
            .args(["--dead-letter-schema-id", &ids.dead_letter.to_string()])
            .args([
                "--allowed-lateness-ms",
                &self.allowed_lateness.as_millis().to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} -jar {}",
                    self.launcher.display(),
                    self.jar.display()
                )
            })?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, running) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "RUNNING"
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        Ok(App {
            child,
            log,
            state,
            running,
        })
    }
}

impl App {
    /// Waits until Kafka Streams reports RUNNING (its tasks assigned), or fails with its log.
    pub async fn running(&mut self) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(120), &mut self.running).await {
            Ok(Ok(())) => Ok(()),
            _ => anyhow::bail!(
                "the Kafka Streams application did not reach RUNNING; its log ({}):\n{}",
                self.log.display(),
                self.log_tail()
            ),
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the JVM is still up (an application error ends it).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Every output the bench waited for is committed by now: nothing is lost by not
        // closing cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}
