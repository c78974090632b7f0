//! Realistic log lines for the indexer scenarios: nginx access lines from the conformance corpus
//! (`../shared/corpora/logs/nginx`) with varied addresses, paths, statuses and sizes, mixed with
//! logfmt application lines whose words follow a Zipf-like frequency. Deterministic: the same seed
//! gives the same lines, so runs compare.

use std::path::Path;

/// Deterministic xorshift.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Index in `0..n` with probability falling like 1/(i+1): a few very common, a long tail.
    pub fn zipf(&mut self, n: usize) -> usize {
        // Inverse of the continuous 1/x distribution over [1, n+1).
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let x = ((n as f64 + 1.0).ln() * u).exp() - 1.0;
        (x as usize).min(n - 1)
    }
}

const LEVELS: [&str; 6] = ["info", "info", "info", "debug", "warn", "error"];
const VERBS: [&str; 24] = [
    "request",
    "completed",
    "cache",
    "miss",
    "upstream",
    "responded",
    "slowly",
    "retrying",
    "connection",
    "database",
    "payment",
    "authorised",
    "session",
    "refreshed",
    "timeout",
    "queue",
    "flushed",
    "worker",
    "started",
    "shard",
    "rebalanced",
    "token",
    "expired",
    "checkpoint",
];
const SERVICES: [&str; 8] = ["checkout", "cart", "users", "search", "billing", "gateway", "auth", "ingest"];

/// Generates lines; `seed` decides them all.
pub struct LogGen {
    rng: Rng,
    nginx: Vec<String>,
    seq: u64,
}

impl LogGen {
    /// Loads the nginx corpus lines as templates (fails with a message naming the folder).
    pub fn new(seed: u64) -> anyhow::Result<LogGen> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/logs/nginx");
        let mut nginx = Vec::new();
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| anyhow::anyhow!("{}: {e} (the conformance corpora must sit beside the repo)", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&path)?;
                nginx.extend(text.lines().filter(|l| l.contains("HTTP/")).map(str::to_string));
            }
        }
        anyhow::ensure!(!nginx.is_empty(), "no nginx access lines in {}", dir.display());
        Ok(LogGen { rng: Rng(seed | 1), nginx, seq: 0 })
    }

    /// The next line (no trailing newline).
    pub fn line(&mut self) -> String {
        self.seq += 1;
        let r = &mut self.rng;
        if r.below(3) == 0 {
            // An nginx access line with a fresh client address, path, status and size.
            let template = &self.nginx[r.below(self.nginx.len())];
            let rest = template.split_once(" - ").map(|(_, rest)| rest).unwrap_or(template);
            let ip = format!("{}.{}.{}.{}", 10 + r.below(200), r.below(256), r.below(256), 1 + r.below(254));
            let rest = rest.replacen(" 200 ", [" 200 ", " 200 ", " 304 ", " 404 ", " 500 "][r.below(5)], 1);
            format!("{ip} - {rest} rt={}.{:03} path_id={}", r.below(3), r.below(1000), r.zipf(50_000))
        } else {
            let words: Vec<&str> = (0..3 + r.below(5)).map(|_| VERBS[r.zipf(VERBS.len())]).collect();
            format!(
                "ts=2026-11-27T07:{:02}:{:02}.{:03}Z level={} service={} msg=\"{}\" user_id={} order={:x} duration_ms={} trace_id={:016x} seq={}",
                (self.seq / 60_000) % 60,
                (self.seq / 1000) % 60,
                self.seq % 1000,
                LEVELS[r.below(LEVELS.len())],
                SERVICES[r.zipf(SERVICES.len())],
                words.join(" "),
                r.zipf(100_000),
                r.next() % 0xff_ffff,
                r.below(2000),
                r.next(),
                self.seq,
            )
        }
    }
}
