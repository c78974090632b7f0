//! The scrape manager: keeps every job's discovered target groups, turns them into targets
//! (`JobPlan::targets`, i.e. relabeling) when a provider reports a change, starts a scrape loop for
//! each new target and stops the loops of targets that went away (they ship stale markers on the
//! way out). A target that is discovered again with the same labels and URL keeps its loop and
//! its health, as in Prometheus.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use model::TimeSeries;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::scrape::sd::{self, TargetGroup, Update};
use crate::scrape::target::{self, JobPlan};
use crate::scrape::{DroppedTarget, TargetStatus};
use crate::ship::Chunk;

/// A target's identity: job index, scrape URL, hash of its labels.
type TargetKey = (usize, String, u64);

/// What `/api/v1/targets` shows, updated by the manager.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    active: BTreeMap<TargetKey, Arc<Mutex<TargetStatus>>>,
    dropped: BTreeMap<usize, Vec<DroppedTarget>>,
}

impl Registry {
    pub(crate) fn active(&self) -> Vec<TargetStatus> {
        self.active.values().map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect()
    }

    pub(crate) fn dropped(&self) -> Vec<DroppedTarget> {
        self.dropped.values().flatten().cloned().collect()
    }
}

struct Manager {
    plans: Vec<JobPlan>,
    /// Groups by (job, provider).
    groups: BTreeMap<(usize, usize), Vec<TargetGroup>>,
    /// The `removed` token of each running loop.
    running: HashMap<TargetKey, CancellationToken>,
    loops: JoinSet<()>,
    registry: Arc<RwLock<Registry>>,
    samples: mpsc::Sender<Chunk<TimeSeries>>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
}

/// Compiles every job, starts the static targets right away and the discovery providers, and
/// returns the manager's task (it ends after `cancel`, once every scrape loop has returned) and
/// the registry it keeps current.
pub(crate) fn start(
    config: &CollectorConfig,
    samples: mpsc::Sender<Chunk<TimeSeries>>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
) -> Result<(JoinHandle<()>, Arc<RwLock<Registry>>), crate::Error> {
    let plans = (0..config.scrape_configs.len()).map(|i| JobPlan::new(i, config)).collect::<Result<Vec<_>, _>>()?;
    let registry = Arc::new(RwLock::new(Registry::default()));
    let mut manager = Manager {
        plans,
        groups: BTreeMap::new(),
        running: HashMap::new(),
        loops: JoinSet::new(),
        registry: registry.clone(),
        samples,
        metrics,
        cancel: cancel.clone(),
    };
    let (updates_tx, updates) = mpsc::channel(sd::UPDATE_QUEUE);
    for (i, job) in config.scrape_configs.iter().enumerate() {
        manager.apply(Update { job: i, provider: 0, groups: sd::static_groups(job) });
        sd::spawn_providers(i, job, &updates_tx, &cancel);
    }
    drop(updates_tx);
    Ok((tokio::spawn(manager.run(updates)), registry))
}

impl Manager {
    async fn run(mut self, mut updates: mpsc::Receiver<Update>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                update = updates.recv() => match update {
                    Some(update) => self.apply(update),
                    // No dynamic providers (or all gone): the targets are fixed until shutdown.
                    None => {
                        self.cancel.cancelled().await;
                        break;
                    }
                },
            }
            while self.loops.try_join_next().is_some() {}
        }
        while self.loops.join_next().await.is_some() {}
    }

    /// Replaces one provider's groups and brings the job's scrape loops in line.
    fn apply(&mut self, update: Update) {
        let job = update.job;
        self.groups.insert((job, update.provider), update.groups);
        let plan = &self.plans[job];
        let groups = self.groups.range((job, 0)..(job + 1, 0)).flat_map(|(_, g)| g);
        let (targets, dropped) = plan.targets(groups);
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        registry.dropped.insert(job, dropped);
        let mut wanted = HashMap::with_capacity(targets.len());
        for t in targets {
            let (url, hash) = t.key();
            wanted.entry((job, url, hash)).or_insert(t);
        }
        let gone: Vec<TargetKey> =
            self.running.keys().filter(|k| k.0 == job && !wanted.contains_key(*k)).cloned().collect();
        for key in gone {
            if let Some(removed) = self.running.remove(&key) {
                removed.cancel();
            }
            registry.active.remove(&key);
        }
        let mut started = 0;
        for (key, t) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let removed = CancellationToken::new();
            registry.active.insert(key.clone(), t.status.clone());
            self.running.insert(key, removed.clone());
            self.loops.spawn(target::run(t, self.samples.clone(), self.metrics.clone(), self.cancel.clone(), removed));
            started += 1;
        }
        tracing::debug!(job = %plan.name, targets = self.running.keys().filter(|k| k.0 == job).count(), started, "targets updated");
    }
}
