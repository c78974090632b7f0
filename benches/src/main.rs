//! Tarsier's benchmark runner. Each scenario measures one path end to end on this machine and
//! prints one machine-readable JSON line: `{"scenario", figures..., "peer", "peer_figure", "ratio"}`.
//! Where a peer exists on this machine kind it runs in the same invocation; where none can be
//! installed here yet, `peer` says so and `ratio` is null. See benches/README.md.

mod agent_ship;
mod alert_rules;
mod collector_tail;
mod e2e_tail;
mod exposition_parse;
mod indexer_ingest;
mod loggen;
mod needle;
mod procs;
mod promql_peers;
mod report;
mod scrape_peers;
mod signals_cpu;
mod steady;
mod tsdb_ingest;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Scenario {
    /// Lines appended to a file until all are searchable through the indexer (tail → index).
    E2eTail,
    /// Concurrent batches pushed straight into the indexer library until committed (WAL + tantivy).
    IndexerIngest,
    /// A rare token found by the indexer, by ripgrep over the raw file and by SQLite FTS5.
    Needle,
    /// CRI files tailed, parsed and partials joined into a sink that acknowledges at once: the
    /// CPU of the tail path alone (peer: Fluent Bit when installed).
    CollectorTail,
    /// The same CRI files tailed by a `tarsier agent` process shipping to a `tarsier server`
    /// process until every record is acknowledged: the agent's CPU per GB (goal <= 10), the
    /// server's apart.
    AgentShip,
    /// Prometheus text-format parsing throughput on a real node_exporter page, with prometheus-parse.
    ExpositionParse,
    /// remote_write load against a running server, WAL replay time, bytes/sample in blocks.
    TsdbIngest,
    /// Tarsier, Prometheus and VictoriaMetrics scraping the same node_exporters every second:
    /// CPU-seconds, peak RSS and on-disk bytes per sample of each.
    ScrapePeers,
    /// The differential PromQL query set timed in Tarsier and in Prometheus on the same data.
    PromqlPeers,
    /// 1,000 kube-prometheus rules over 100,000 series every 15 s: round time, notification latency.
    AlertRules,
    /// `tarsier agent` + `tarsier server` under steady logs and scrapes; the server is stopped for
    /// `--outage-seconds`: the agent's buffer, the catch-up time, query latency meanwhile, delivery.
    Outage,
    /// The same load for `--soak-minutes`: RSS of both processes over time (flat after warm-up?).
    Soak,
    /// CRI lines at `--signal-rates` lines/s over 500 pods, tailed with `collector.signals` off and
    /// on: CPU-ns per line each way, the difference being the signals' cost.
    SignalsCpu,
}

/// Runs Tarsier's benchmark scenarios.
#[derive(Debug, Parser)]
#[command(name = "tarsier-bench")]
struct Args {
    /// Scenarios to run (all when none given).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Lines written by the e2e-tail scenario.
    #[arg(long, default_value_t = 1_000_000)]
    lines: usize,
    /// Concurrent pushers of the indexer-ingest scenario.
    #[arg(long, default_value_t = 4)]
    pushers: usize,
    /// Lines per pushed batch (indexer-ingest).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// indexer.writer_memory_bytes for indexer-ingest (the store's default when absent).
    #[arg(long)]
    writer_memory_bytes: Option<usize>,
    /// The `indexer:` config section (YAML, e.g. `{stored_lines_zstd_level: 9}`) for needle and
    /// indexer-ingest, to compare settings without a rebuild (the store's defaults when absent).
    #[arg(long)]
    indexer_config: Option<String>,
    /// Megabytes of CRI lines written by the collector-tail and agent-ship scenarios.
    #[arg(long, default_value_t = 1000)]
    tail_mb: usize,
    /// The shared conformance corpora (collector-tail takes its messages from there).
    #[arg(long, default_value = "../shared/corpora")]
    corpora: std::path::PathBuf,
    /// Rules evaluated by alert-rules (the corpus replicated over namespaces).
    #[arg(long, default_value_t = 1000)]
    rules: usize,
    /// Evaluation rounds of alert-rules.
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Series written by the tsdb-ingest and alert-rules scenarios.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Samples written by the tsdb-ingest scenario.
    #[arg(long, default_value_t = 10_000_000)]
    samples: usize,
    /// Concurrent remote_write connections of the tsdb-ingest scenario.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long the scrape-peers scenario scrapes.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    /// node_exporter processes started by scrape-peers (each one target).
    #[arg(long, default_value_t = 10)]
    exporters: usize,
    /// Log lines per second written by outage and soak.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Warm-up before the outage or the soak's measurements start.
    #[arg(long, default_value_t = 60)]
    warmup_seconds: u64,
    /// How long the outage scenario keeps the server stopped.
    #[arg(long, default_value_t = 300)]
    outage_seconds: u64,
    /// How long the soak scenario runs after its warm-up.
    #[arg(long, default_value_t = 30)]
    soak_minutes: u64,
    /// The agent's disk buffer bound (`collector.shipping.disk_buffer.max_bytes`) in MiB.
    #[arg(long, default_value_t = 256)]
    buffer_mib: u64,
    /// Line rates (lines/s) signals-cpu runs at, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000])]
    signal_rates: Vec<u64>,
    /// How long signals-cpu writes at each rate, per run.
    #[arg(long, default_value_t = 10)]
    signal_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let indexer_config: indexer::IndexerConfig = match &args.indexer_config {
        Some(yaml) => serde_yaml_ng::from_str(yaml)?,
        None => indexer::IndexerConfig::default(),
    };
    let scenarios = if args.scenarios.is_empty() { vec![Scenario::E2eTail] } else { args.scenarios.clone() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for scenario in scenarios {
        match scenario {
            Scenario::E2eTail => runtime.block_on(e2e_tail::run(args.lines))?,
            Scenario::IndexerIngest => indexer_ingest::run(&indexer_ingest::Options {
                lines: args.lines,
                pushers: args.pushers,
                batch: args.batch,
                writer_memory_bytes: args.writer_memory_bytes,
                config: indexer_config.clone(),
            })?,
            Scenario::Needle => needle::run(args.lines, indexer_config.clone())?,
            Scenario::CollectorTail => runtime.block_on(collector_tail::run(args.tail_mb, &args.corpora))?,
            Scenario::AgentShip => runtime.block_on(agent_ship::run(args.tail_mb, &args.corpora))?,
            Scenario::ExpositionParse => exposition_parse::run()?,
            Scenario::ScrapePeers => runtime.block_on(scrape_peers::run(&scrape_peers::Options {
                seconds: args.seconds,
                exporters: args.exporters,
            }))?,
            Scenario::PromqlPeers => runtime.block_on(promql_peers::run(&args.corpora))?,
            Scenario::AlertRules => {
                runtime.block_on(alert_rules::run(&args.corpora, args.rules, args.series, args.rounds))?
            }
            Scenario::Outage | Scenario::Soak => {
                let options = steady::Options {
                    rate: args.rate,
                    exporters: args.exporters,
                    warmup_seconds: args.warmup_seconds,
                    outage_seconds: args.outage_seconds,
                    soak_minutes: args.soak_minutes,
                    buffer_mib: args.buffer_mib,
                };
                runtime.block_on(steady::run(&options, scenario == Scenario::Outage))?
            }
            Scenario::SignalsCpu => runtime.block_on(signals_cpu::run(&args.signal_rates, args.signal_seconds))?,
            Scenario::TsdbIngest => runtime.block_on(tsdb_ingest::run(args.series, args.samples, args.connections))?,
        }
    }
    Ok(())
}
