//! What the operating system says about a bench run: the wall clock shared by the bench's
//! processes, CPU time per process and of the whole machine, and peak RSS — all from `/proc`
//! (Linux; elsewhere the CPU figures are simply absent).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Clock ticks per second of the times in `/proc/<pid>/stat` and `/proc/stat` (USER_HZ: 100 on
/// every Linux architecture's user ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// Microseconds since the Unix epoch: the one clock the publisher and the sink processes share.
pub fn wall_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Peak resident set (`VmHWM`) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(&pid.to_string(), "VmHWM:")
}

/// A memory field (`VmHWM:`, `VmRSS:` …) of `/proc/<proc>/status` in MiB; `proc` is a pid
/// or `self`.
pub fn status_mib(proc: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds (user + system) this process has used so far.
pub fn own_cpu_seconds() -> f64 {
    process_cpu("self").map_or(0.0, |(_, s)| s)
}

/// `(comm, utime + stime in seconds)` of a whole process (all its threads); `proc` is a
/// pid or `self`.
fn process_cpu(proc: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{proc}/stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let comm = stat.get(open + 1..close)?.to_owned();
    // After "pid (comm)" come the fields from 3 (state) on: utime is field 14, stime field 15.
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) as f64 / TICKS_PER_SEC))
}

/// CPU seconds of every process named `postgres` (the server and its backends), by pid.
fn postgres_cpu() -> HashMap<u32, f64> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return HashMap::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| match process_cpu(&pid.to_string())? {
            (comm, secs) if comm == "postgres" => Some((pid, secs)),
            _ => None,
        })
        .collect()
}

/// Machine-wide ticks from the `cpu` line of `/proc/stat`, and the number of CPUs.
#[derive(Clone, Copy, Default)]
struct MachineTicks {
    busy: u64,
    idle: u64,
    iowait: u64,
    cpus: usize,
}

fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let v: Vec<u64> = lines.next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let total: u64 = v.iter().take(8).sum();
    let (idle, iowait) = (*v.get(3)?, v.get(4).copied().unwrap_or(0));
    let cpus = lines.filter(|l| l.starts_with("cpu")).count().max(1);
    Some(MachineTicks { busy: total - idle - iowait, idle, iowait, cpus })
}

/// The processes whose CPU a run reports, and whether to add up the local PostgreSQL server's.
pub struct Watch {
    pub processes: Vec<(String, u32)>,
    pub postgres: bool,
}

/// One reading of everything a [`Watch`] looks at.
pub struct Sample {
    at: Instant,
    processes: Vec<Option<f64>>,
    postgres: HashMap<u32, f64>,
    machine: Option<MachineTicks>,
}

impl Watch {
    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            processes: self.processes.iter().map(|(_, pid)| process_cpu(&pid.to_string()).map(|(_, s)| s)).collect(),
            postgres: if self.postgres { postgres_cpu() } else { HashMap::new() },
            machine: machine_ticks(),
        }
    }

    /// Prints CPU per process as % of one core over `[a, b]`, and how busy the machine was.
    pub fn print(&self, a: &Sample, b: &Sample) {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |secs: f64| secs / wall * 100.0;
        println!("  CPU over the run ({wall:.2} s; % of one core, utime+stime from /proc):");
        let mut accounted = 0.0;
        for (i, (name, pid)) in self.processes.iter().enumerate() {
            match (a.processes[i], b.processes[i]) {
                (Some(x), Some(y)) => {
                    accounted += y - x;
                    println!("    {name:<34} {:>6.1} %  (pid {pid})", pct(y - x));
                }
                _ => println!("    {name:<34}      ? (pid {pid} gone)"),
            }
        }
        if self.postgres {
            // Backends started during the run count from zero; any that ended during it are lost.
            let secs: f64 = b.postgres.iter().map(|(pid, y)| y - a.postgres.get(pid).copied().unwrap_or(0.0)).sum();
            accounted += secs;
            let n = b.postgres.len();
            println!("    {:<34} {:>6.1} %  ({n} processes)", "postgres (local server, all)", pct(secs));
        }
        if let (Some(x), Some(y)) = (a.machine, b.machine) {
            let (busy, idle, iowait) = (y.busy - x.busy, y.idle - x.idle, y.iowait - x.iowait);
            let total = (busy + idle + iowait).max(1) as f64;
            let capacity = y.cpus as f64 * 100.0;
            let share = |t: u64| t as f64 / total * capacity;
            println!("    {:<34} {:>6.1} %", "everything else", (share(busy) - pct(accounted)).max(0.0));
            println!(
                "    machine: busy {:.0} % of {capacity:.0} %, idle {:.0} % (+ iowait {:.1} %) — {} CPUs",
                share(busy),
                share(idle),
                share(iowait),
                y.cpus
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_cpu_and_the_machine() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let (comm, secs) = super::process_cpu(&std::process::id().to_string()).expect("own stat");
        assert!(!comm.is_empty() && secs >= 0.0);
        let m = super::machine_ticks().expect("/proc/stat");
        assert!(m.cpus >= 1 && m.busy + m.idle > 0);
        assert!(super::peak_rss_mib(std::process::id()).is_some_and(|m| m > 0.0));
    }
}
