//! CPU time and memory of other processes, read from `/proc` (Linux only;
//! no sampling thread: two readings of cumulative counters bracket a run).

use std::fs;

/// One process to account for, by role (`worker`, `api`, `server`).
#[derive(Debug, Clone)]
pub struct Watched {
    /// Role shown in the report.
    pub role: String,
    /// Its pid.
    pub pid: u32,
}

/// utime + stime of `pid` (all threads) in seconds, if it still exists.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// `(VmRSS, VmHWM)` of `pid` in MiB: current and peak resident memory.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// USER_HZ: 100 on every Linux this runs on; `getconf CLK_TCK` says so
/// without a libc call.
fn clock_ticks() -> f64 {
    100.0
}
