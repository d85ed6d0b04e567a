//! A child process of `herald bench` — `herald serve`, `herald bench-sink` or `herald bench-load`,
//! all this same binary: started without the caller's `HERALD_*` settings, its stdout read line
//! by line, its stderr kept in a log file whose tail explains a failure.

use anyhow::Context;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

pub struct Child {
    pub name: String,
    pub pid: u32,
    process: tokio::process::Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// `herald <subcommand>` with none of the caller's `HERALD_*` variables (the bench sets its own).
pub fn command(subcommand: &str) -> anyhow::Result<tokio::process::Command> {
    let exe = std::env::current_exe().context("locating the herald binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(subcommand);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    // Warnings only (a line per request at 3,000 requests/s is a cost of its own), unless
    // the person running the bench chose a filter.
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    Ok(cmd)
}

impl Child {
    /// Starts `cmd`, its stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: tokio::process::Command, log: PathBuf) -> anyhow::Result<Self> {
        let err = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut process = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = process.id().context("child pid")?;
        let stdout = BufReader::new(process.stdout.take().context("child stdout")?).lines();
        let stdin = process.stdin.take();
        Ok(Self { name: name.to_owned(), pid, process, stdout, stdin, log })
    }

    /// The rest of the first line printed that starts with `prefix` (other lines are skipped).
    pub async fn line_after(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let wait = async {
            loop {
                match self.stdout.next_line().await? {
                    Some(line) => {
                        if let Some(rest) = line.strip_prefix(prefix) {
                            return Ok::<_, anyhow::Error>(rest.to_owned());
                        }
                    }
                    None => anyhow::bail!("exited before printing {prefix:?}"),
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(rest)) => Ok(rest),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(self.failed(anyhow::anyhow!("no {prefix:?} within {timeout:?}"))),
        }
    }

    /// The next line printed (`Ok(None)` at EOF).
    pub async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        self.stdout.next_line().await.map_err(|e| self.failed(e.into()))
    }

    pub async fn send_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// `e`, with the child's name and the tail of its log.
    pub fn failed(&self, e: anyhow::Error) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
        e.context(format!("{} (pid {}); the end of its stderr:\n{}", self.name, self.pid, tail.join("\n")))
    }

    /// Closes stdin (the bench children exit on that), asks for a graceful stop with SIGTERM
    /// (`herald serve` finishes in-flight attempts), and kills after `grace`.
    pub async fn stop(mut self, sigterm: bool, grace: Duration) {
        drop(self.stdin.take());
        if sigterm {
            let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        }
        if tokio::time::timeout(grace, self.process.wait()).await.is_err() {
            let _ = self.process.kill().await;
        }
    }
}
