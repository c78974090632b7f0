//! Rule evaluation: alerting rules (pending → firing → resolved, `for`, `keep_firing_for`,
//! `ALERTS`/`ALERTS_FOR_STATE`, state restored after a restart) and recording rules, over PromQL
//! (the tsdb) or LogQL (the indexer). The engine reaches the stores only through [`RuleStore`].

mod alert_rule;
mod group;

use std::collections::BTreeMap;
use std::sync::Arc;

use model::{Labels, TenantId, TimeSeries};

pub use alert_rule::{Alert, AlertState, AlertingRule, RESOLVED_RETENTION_MS, TemplateContext};
pub use group::{FOR_GRACE_PERIOD_MS, Group, OUTAGE_TOLERANCE_MS, RESEND_DELAY_MS, RecordingRule, RuleEntry, RuleKind};

use crate::Error;

/// The query language of a rule group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// PromQL over the metric store.
    PromQL,
    /// LogQL metric queries over the log store, as Loki's ruler.
    LogQL,
}

/// What rule evaluation needs from the stores.
pub trait RuleStore: Send + Sync {
    /// Evaluates `expr` at `time_ms`: a vector of (labels, value); a scalar is one sample with no
    /// labels.
    fn query(&self, tenant: &TenantId, lang: Lang, expr: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, Error>;
    /// Writes rule output (recordings, `ALERTS`, stale markers) to the metric store.
    fn append(&self, tenant: &TenantId, series: &[TimeSeries]) -> Result<(), Error>;
    /// The last sample in `[start_ms, end_ms]` of each series matching `selector`:
    /// (labels, time, value).
    fn last_samples(
        &self,
        tenant: &TenantId,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, i64, f64)>, Error>;
}

/// An alert handed to the notifier, shaped like Alertmanager's API v2 postable alert.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OutgoingAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// When the alert stops being valid: the resolution time for resolved alerts, otherwise a
    /// few evaluation intervals ahead (it is re-sent before then while it fires).
    pub ends_at_ms: i64,
    pub resolved: bool,
    pub generator_url: String,
}

/// [`RuleStore`] over Tarsier's own stores: PromQL on the tsdb, LogQL on the indexer (when there
/// is one), rule output appended to the tsdb.
pub struct LocalStores {
    pub tsdb: Arc<tsdb::Tsdb>,
    pub indexer: Option<Arc<indexer::Indexer>>,
}

impl RuleStore for LocalStores {
    fn query(&self, tenant: &TenantId, lang: Lang, expr: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, Error> {
        match lang {
            Lang::PromQL => {
                let result = self.tsdb.instant_query(tenant, expr, time_ms).map_err(|e| Error::Query(e.to_string()))?;
                promql_vector(result)
            }
            Lang::LogQL => {
                let indexer =
                    self.indexer.as_ref().ok_or_else(|| Error::Query("no log store to run LogQL on".into()))?;
                let at_ns = time_ms.saturating_mul(1_000_000);
                let req = indexer::MetricQueryRequest {
                    query: expr.to_string(),
                    start_ns: at_ns,
                    end_ns: at_ns,
                    step_ns: 0,
                    instant: true,
                };
                let response = indexer.metric_query(tenant, &req).map_err(|e| Error::Query(e.to_string()))?;
                Ok(match response.data {
                    indexer::MetricData::Vector(v) => v.into_iter().map(|(l, _, v)| (l, v)).collect(),
                    indexer::MetricData::Matrix(m) => {
                        m.into_iter().filter_map(|s| s.points.last().map(|&(_, v)| (s.labels, v))).collect()
                    }
                })
            }
        }
    }

    fn append(&self, tenant: &TenantId, series: &[TimeSeries]) -> Result<(), Error> {
        self.tsdb.append(tenant, series).map(|_| ()).map_err(|e| Error::Query(format!("append: {e}")))
    }

    fn last_samples(
        &self,
        tenant: &TenantId,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(Labels, i64, f64)>, Error> {
        last_samples_via_promql(&self.tsdb, tenant, selector, start_ms, end_ms)
    }
}

/// A PromQL result as rule input: vectors as they are, a scalar as one unlabelled sample.
pub fn promql_vector(result: tsdb::QueryResult) -> Result<Vec<(Labels, f64)>, Error> {
    match result {
        tsdb::QueryResult::Vector(v) => Ok(v.into_iter().map(|(l, _, v)| (l, v)).collect()),
        tsdb::QueryResult::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
        other => Err(Error::Query(format!(
            "rule expressions must return a vector or scalar, got {}",
            match other {
                tsdb::QueryResult::Matrix(_) => "a range vector",
                _ => "a string",
            }
        ))),
    }
}

/// The last sample of each series of `selector` in a window, read with a range selector.
pub fn last_samples_via_promql(
    tsdb: &tsdb::Tsdb,
    tenant: &TenantId,
    selector: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<(Labels, i64, f64)>, Error> {
    let window = (end_ms - start_ms).max(1);
    let expr = format!("{selector}[{window}ms]");
    match tsdb.instant_query(tenant, &expr, end_ms).map_err(|e| Error::Query(e.to_string()))? {
        tsdb::QueryResult::Matrix(m) => {
            Ok(m.into_iter().filter_map(|(l, samples)| samples.last().map(|s| (l, s.timestamp_ms, s.value))).collect())
        }
        _ => Ok(Vec::new()),
    }
}
