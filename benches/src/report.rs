//! One result line per scenario, JSON, so runs can be compared by scripts.

use serde_json::{Map, Value};

/// Prints `{"scenario": name, ...figures, "peer": .., "peer_figure": .., "ratio": ..}` on stdout.
pub fn emit(scenario: &str, figures: &[(&str, Value)], peer: Option<(&str, f64, f64)>) {
    let mut line = Map::new();
    line.insert("scenario".into(), Value::from(scenario));
    for (k, v) in figures {
        line.insert((*k).into(), v.clone());
    }
    match peer {
        Some((name, peer_figure, ratio)) => {
            line.insert("peer".into(), Value::from(name));
            line.insert("peer_figure".into(), Value::from(peer_figure));
            line.insert("ratio".into(), Value::from(ratio));
        }
        None => {
            line.insert("peer".into(), Value::from("none on this machine kind"));
            line.insert("ratio".into(), Value::Null);
        }
    }
    println!("{}", Value::Object(line));
}

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat.
pub fn cpu_seconds() -> f64 {
    proc_cpu_seconds("self")
}

/// CPU seconds (user + system) process `pid` ("self" for this one) has used so far.
pub fn proc_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process in MiB, from /proc/self/status.
pub fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM:")
}

/// Peak resident set size of process `pid` in MiB.
pub fn proc_peak_rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// Current resident set size of this process in MiB.
pub fn rss_mib() -> f64 {
    status_mib("self", "VmRSS:")
}

/// A size line of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, `RssAnon:`, ...) in MiB.
pub fn status_mib(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The `p` quantile (0..=1, nearest rank) of ascending `sorted`; NaN when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `x` to three decimals, for figures people read.
pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
