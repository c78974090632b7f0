//! The scrape manager: keeps every job's discovered target groups, turns them into targets
//! (`JobPlan::targets`, i.e. relabeling) when a provider reports a change, starts a scrape loop for
//! each new target and stops the loops of targets that went away (they ship stale markers on the
//! way out). A target that is discovered again with the same labels and URL keeps its loop and
//! its health, as in Prometheus.
//!
//! A configuration reload ([`ManagerHandle::reload`]) compares jobs by name: an unchanged job
//! keeps its providers, loops and staleness state; a removed job's loops ship stale markers; a
//! changed job gets a fresh slot (new plan, new providers) and its old loops stop — quietly when
//! the new job scrapes the same target (as Prometheus's scrape pool reload does), with stale
//! markers otherwise. Slots are never reused, so a late update from a retired provider is ignored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{CollectorConfig, GlobalScrapeConfig, ScrapeConfig};
use crate::metrics::CollectorMetrics;
use crate::scrape::sd::{self, TargetGroup, Update};
use crate::scrape::target::{self, JobPlan, ScrapeOutput};
use crate::scrape::{DroppedTarget, TargetStatus};

/// A target's identity: job slot, scrape URL, hash of its labels.
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

/// A running job: its slot, the settings it was built from, and its providers' stop token.
struct Job {
    slot: usize,
    config: ScrapeConfig,
    global: GlobalScrapeConfig,
    providers: CancellationToken,
}

impl Job {
    fn same_discovery(&self, other: &ScrapeConfig) -> bool {
        self.config.file_sd_configs == other.file_sd_configs
            && self.config.dns_sd_configs == other.dns_sd_configs
            && self.config.kubernetes_sd_configs == other.kubernetes_sd_configs
    }
}

/// A running scrape loop's stop tokens: `removed` ships stale markers, `quiet` does not.
struct Loop {
    removed: CancellationToken,
    quiet: CancellationToken,
}

/// A new job list with its plans compiled (so a bad one is refused before anything changes).
struct Reload {
    config: CollectorConfig,
    plans: Vec<JobPlan>,
    done: oneshot::Sender<()>,
}

/// Asks the running manager to switch to a new job list.
#[derive(Clone)]
pub(crate) struct ManagerHandle {
    tx: mpsc::Sender<Reload>,
}

impl ManagerHandle {
    /// Compiles every job of `config` (errors name the key) and hands them to the manager; returns
    /// once the manager has started and stopped what changed.
    pub(crate) async fn reload(&self, config: &CollectorConfig) -> Result<(), crate::Error> {
        let plans = compile(config)?;
        let (done, applied) = oneshot::channel();
        let reload = Reload { config: config.clone(), plans, done };
        self.tx.send(reload).await.map_err(|_| crate::Error::Task("the scrape manager has stopped".into()))?;
        applied.await.map_err(|_| crate::Error::Task("the scrape manager has stopped".into()))
    }
}

pub(crate) fn compile(config: &CollectorConfig) -> Result<Vec<JobPlan>, crate::Error> {
    (0..config.scrape_configs.len()).map(|i| JobPlan::new(i, config)).collect()
}

struct Manager {
    jobs: Vec<Job>,
    plans: HashMap<usize, JobPlan>,
    next_slot: usize,
    /// Groups by (job slot, provider).
    groups: BTreeMap<(usize, usize), Vec<TargetGroup>>,
    running: HashMap<TargetKey, Loop>,
    loops: JoinSet<()>,
    registry: Arc<RwLock<Registry>>,
    samples: ScrapeOutput,
    updates: mpsc::Sender<Update>,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
}

/// A started manager.
pub(crate) struct Started {
    /// Ends after `cancel`, once every scrape loop has returned.
    pub task: JoinHandle<()>,
    /// What `/api/v1/targets` shows, kept current.
    pub registry: Arc<RwLock<Registry>>,
    /// Reloads the job list.
    pub handle: ManagerHandle,
}

/// Compiles every job, starts the static targets right away and the discovery providers.
pub(crate) fn start(
    config: &CollectorConfig,
    samples: ScrapeOutput,
    metrics: CollectorMetrics,
    cancel: CancellationToken,
) -> Result<Started, crate::Error> {
    let plans = compile(config)?;
    let registry = Arc::new(RwLock::new(Registry::default()));
    let (updates, updates_rx) = mpsc::channel(sd::UPDATE_QUEUE);
    let mut manager = Manager {
        jobs: Vec::new(),
        plans: HashMap::new(),
        next_slot: 0,
        groups: BTreeMap::new(),
        running: HashMap::new(),
        loops: JoinSet::new(),
        registry: registry.clone(),
        samples,
        updates,
        metrics,
        cancel: cancel.clone(),
    };
    for (job, plan) in config.scrape_configs.iter().zip(plans) {
        manager.add_job(job, &config.global, plan, Vec::new());
    }
    let (tx, reloads) = mpsc::channel(1);
    Ok(Started { task: tokio::spawn(manager.run(updates_rx, reloads)), registry, handle: ManagerHandle { tx } })
}

impl Manager {
    async fn run(mut self, mut updates: mpsc::Receiver<Update>, mut reloads: mpsc::Receiver<Reload>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                // The manager holds a sender itself, so this never ends while it runs.
                Some(update) = updates.recv() => self.apply(update),
                Some(reload) = reloads.recv() => {
                    self.reload(&reload.config, reload.plans);
                    let _ = reload.done.send(());
                }
            }
            while self.loops.try_join_next().is_some() {}
        }
        while self.loops.join_next().await.is_some() {}
    }

    /// Starts job `config` in a new slot: its static targets now, its providers in the background.
    /// `carried` are dynamic groups of the job's previous slot whose providers are unchanged, so
    /// its targets do not vanish until the new providers report.
    fn add_job(
        &mut self,
        config: &ScrapeConfig,
        global: &GlobalScrapeConfig,
        plan: JobPlan,
        carried: Vec<(usize, Vec<TargetGroup>)>,
    ) {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.plans.insert(slot, plan);
        for (provider, groups) in carried {
            self.groups.insert((slot, provider), groups);
        }
        self.apply(Update { job: slot, provider: 0, groups: sd::static_groups(config) });
        let providers = self.cancel.child_token();
        sd::spawn_providers(slot, config, &self.updates, &providers);
        self.jobs.push(Job { slot, config: config.clone(), global: global.clone(), providers });
    }

    /// Replaces the job list: unchanged jobs (same name and settings) keep running untouched.
    fn reload(&mut self, config: &CollectorConfig, plans: Vec<JobPlan>) {
        let mut old: HashMap<String, Job> = self.jobs.drain(..).map(|j| (j.config.job_name.clone(), j)).collect();
        let (mut kept, mut added, mut changed) = (0, 0, 0);
        for (job, plan) in config.scrape_configs.iter().zip(plans) {
            match old.remove(&job.job_name) {
                Some(running) if running.config == *job && running.global == config.global => {
                    self.jobs.push(running);
                    kept += 1;
                }
                Some(running) => {
                    let carried = if running.same_discovery(job) {
                        self.groups
                            .range((running.slot, 1)..(running.slot + 1, 0))
                            .map(|(k, g)| (k.1, g.clone()))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let old_slot = running.slot;
                    self.add_job(job, &config.global, plan, carried);
                    let new_slot = self.jobs.last().map(|j| j.slot).unwrap_or_default();
                    let continuing: HashSet<(String, u64)> =
                        self.running.keys().filter(|k| k.0 == new_slot).map(|k| (k.1.clone(), k.2)).collect();
                    self.retire(running, |key| continuing.contains(&(key.1.clone(), key.2)));
                    tracing::info!(job = %job.job_name, old_slot, new_slot, "scrape job changed, its targets restart");
                    changed += 1;
                }
                None => {
                    self.add_job(job, &config.global, plan, Vec::new());
                    added += 1;
                }
            }
        }
        let removed = old.len();
        for (name, job) in old {
            tracing::info!(job = %name, "scrape job removed, its targets go stale");
            self.retire(job, |_| false);
        }
        tracing::info!(kept, added, changed, removed, "scrape configuration reloaded");
    }

    /// Stops a job's providers and loops; a loop for which `quiet` says so ends without stale
    /// markers (its target lives on in the job's new slot).
    fn retire(&mut self, job: Job, quiet: impl Fn(&TargetKey) -> bool) {
        job.providers.cancel();
        self.plans.remove(&job.slot);
        let groups: Vec<(usize, usize)> =
            self.groups.range((job.slot, 0)..(job.slot + 1, 0)).map(|(k, _)| *k).collect();
        for key in groups {
            self.groups.remove(&key);
        }
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        registry.dropped.remove(&job.slot);
        let keys: Vec<TargetKey> = self.running.keys().filter(|k| k.0 == job.slot).cloned().collect();
        for key in keys {
            if let Some(stop) = self.running.remove(&key) {
                if quiet(&key) { stop.quiet.cancel() } else { stop.removed.cancel() }
            }
            registry.active.remove(&key);
        }
    }

    /// Replaces one provider's groups and brings the job's scrape loops in line.
    fn apply(&mut self, update: Update) {
        let job = update.job;
        // A provider of a retired slot reporting before it saw its cancellation.
        let Some(plan) = self.plans.get(&job) else { return };
        self.groups.insert((job, update.provider), update.groups);
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
            if let Some(stop) = self.running.remove(&key) {
                stop.removed.cancel();
            }
            registry.active.remove(&key);
        }
        let mut started = 0;
        for (key, t) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let stop = Loop { removed: CancellationToken::new(), quiet: self.cancel.child_token() };
            registry.active.insert(key.clone(), t.status.clone());
            let task =
                target::run(t, self.samples.clone(), self.metrics.clone(), stop.quiet.clone(), stop.removed.clone());
            self.running.insert(key, stop);
            self.loops.spawn(task);
            started += 1;
        }
        tracing::debug!(job = %plan.name, targets = self.running.keys().filter(|k| k.0 == job).count(), started, "targets updated");
    }
}
