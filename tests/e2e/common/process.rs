//! Running `muster` as a subprocess: a worker that lives as long as the test, or a command run
//! to its end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::muster;

/// A `muster` subprocess, killed if the test ends without stopping it.
pub struct Worker {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Worker {
    pub fn start(name: &str, args: &[&str], env: &[(&str, String)], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = muster();
        cmd.args(args)
            .env("MUSTER_LOG", "info,rdkafka=warn")
            // The built-in development key (a test may set MUSTER_SECRET_KEY or turn it off).
            .env("MUSTER_DEVELOPMENT", "true")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting muster {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// The process's resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "muster {} exited with {status}:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "muster {} did not stop within {within:?} of SIGTERM:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `muster args` run to its end with quiet logs and `env`.
pub fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    muster()
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MUSTER_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running muster {args:?}: {e}"))
}

/// The standard output of `muster args`, which must succeed.
pub fn run_ok(args: &[&str], env: &[(&str, String)]) -> String {
    stdout_of(run(args, env), &format!("muster {args:?}"))
}

/// `out`'s standard output, once it is known that `what` succeeded.
pub fn stdout_of(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The standard error of `muster args`, which must fail.
pub fn run_failing(args: &[&str], env: &[(&str, String)]) -> String {
    let out = run(args, env);
    assert!(!out.status.success(), "muster {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
