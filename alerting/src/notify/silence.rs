//! Silences: matchers plus a time window that suppress matching alerts, created, updated, expired
//! and listed through the API (Alertmanager API v2's shapes) and persisted to `silences.json`
//! atomically on every change. Expired silences are kept for five days, as Alertmanager's default
//! retention, so the UI can show and re-create them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::matchers::{ApiMatcher, Matcher, matches_all};
use super::persist;
use crate::Error;

/// Expired silences are dropped after this long (Alertmanager's `--data.retention`, 120h).
const RETENTION_HOURS: i64 = 120;

/// A silence in Alertmanager API v2's shape (plus its tenant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Identifier (a UUID), empty when creating.
    #[serde(default)]
    pub id: String,
    /// Matchers; all must match.
    pub matchers: Vec<ApiMatcher>,
    /// Start of the window.
    pub starts_at: DateTime<Utc>,
    /// End of the window.
    pub ends_at: DateTime<Utc>,
    /// Author.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Last change.
    #[serde(default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
    /// Tenant the silence applies to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
}

/// A silence's state at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// In effect.
    Active,
    /// Over.
    Expired,
}

impl Silence {
    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if self.ends_at <= now {
            SilenceState::Expired
        } else if self.starts_at > now {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }
}

struct Entry {
    silence: Silence,
    matchers: Vec<Matcher>,
}

/// The silence store.
pub(crate) struct Silences {
    path: PathBuf,
    entries: parking_lot::Mutex<Vec<Entry>>,
    write: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    silences: Vec<Silence>,
}

fn compile(s: &Silence) -> Result<Vec<Matcher>, Error> {
    if s.matchers.is_empty() {
        return Err(Error::InvalidSilence("a silence needs at least one matcher".into()));
    }
    let ms = s
        .matchers
        .iter()
        .map(|m| Matcher::try_from(m).map_err(Error::InvalidSilence))
        .collect::<Result<Vec<_>, _>>()?;
    // Alertmanager: a silence must not match the empty label set, or it would silence everything.
    if matches_all(&ms, &Default::default()) {
        return Err(Error::InvalidSilence("the matchers would match every alert".into()));
    }
    Ok(ms)
}

impl Silences {
    pub(crate) async fn open(path: PathBuf) -> Result<Self, Error> {
        let mut entries = Vec::new();
        if let Some(bytes) = persist::read(&path).await? {
            let f: File = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Notify(format!("{}: not a silences file: {e}", path.display())))?;
            for s in f.silences {
                let matchers = compile(&s)?;
                entries.push(Entry { silence: s, matchers });
            }
        }
        Ok(Self { path, entries: parking_lot::Mutex::new(entries), write: tokio::sync::Mutex::new(()) })
    }

    async fn save(&self) -> Result<(), Error> {
        let _g = self.write.lock().await;
        let bytes = {
            let now = Utc::now();
            let mut es = self.entries.lock();
            es.retain(|e| e.silence.ends_at + chrono::Duration::hours(RETENTION_HOURS) > now);
            let f = File { version: 1, silences: es.iter().map(|e| e.silence.clone()).collect() };
            serde_json::to_vec_pretty(&f).expect("silences serialise")
        };
        persist::write_atomic(self.path.clone(), bytes).await
    }

    /// Creates a silence, or updates the one with `s.id`; returns the id. Alertmanager's rule:
    /// changing an active silence's matchers or start expires it and creates a new one.
    pub(crate) async fn upsert(&self, tenant: &str, mut s: Silence) -> Result<String, Error> {
        let now = Utc::now();
        if s.ends_at <= s.starts_at {
            return Err(Error::InvalidSilence("endsAt must be after startsAt".into()));
        }
        if s.ends_at <= now {
            return Err(Error::InvalidSilence("endsAt is in the past".into()));
        }
        let matchers = compile(&s)?;
        s.tenant = tenant.to_string();
        s.updated_at = now;
        if s.starts_at < now {
            s.starts_at = now;
        }
        let id = {
            let mut es = self.entries.lock();
            let existing = if s.id.is_empty() {
                None
            } else {
                Some(
                    es.iter_mut()
                        .find(|e| e.silence.id == s.id && e.silence.tenant == tenant)
                        .ok_or_else(|| Error::SilenceNotFound(s.id.clone()))?,
                )
            };
            match existing {
                Some(e) if e.silence.state(now) == SilenceState::Expired => {
                    return Err(Error::InvalidSilence(format!("silence {} is expired", s.id)));
                }
                Some(e) if e.silence.matchers == s.matchers || e.silence.state(now) == SilenceState::Pending => {
                    if e.silence.state(now) == SilenceState::Active {
                        s.starts_at = e.silence.starts_at;
                    }
                    e.silence = s.clone();
                    e.matchers = matchers;
                    s.id.clone()
                }
                other => {
                    if let Some(e) = other {
                        e.silence.ends_at = now;
                        e.silence.updated_at = now;
                    }
                    s.id = new_id();
                    es.push(Entry { silence: s.clone(), matchers });
                    s.id.clone()
                }
            }
        };
        self.save().await?;
        Ok(id)
    }

    /// Expires a silence now.
    pub(crate) async fn expire(&self, tenant: &str, id: &str) -> Result<(), Error> {
        let now = Utc::now();
        {
            let mut es = self.entries.lock();
            let e = es
                .iter_mut()
                .find(|e| e.silence.id == id && e.silence.tenant == tenant)
                .ok_or_else(|| Error::SilenceNotFound(id.to_string()))?;
            match e.silence.state(now) {
                SilenceState::Expired => return Err(Error::InvalidSilence(format!("silence {id} is already expired"))),
                SilenceState::Pending => e.silence.starts_at = now,
                SilenceState::Active => {}
            }
            e.silence.ends_at = now;
            e.silence.updated_at = now;
        }
        self.save().await
    }

    /// The tenant's silences, newest change first.
    pub(crate) fn list(&self, tenant: &str) -> Vec<Silence> {
        let mut out: Vec<Silence> =
            self.entries.lock().iter().filter(|e| e.silence.tenant == tenant).map(|e| e.silence.clone()).collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        out
    }

    /// Every tenant's silences (for the metrics).
    pub(crate) fn all(&self) -> Vec<Silence> {
        self.entries.lock().iter().map(|e| e.silence.clone()).collect()
    }

    /// One silence.
    pub(crate) fn get(&self, tenant: &str, id: &str) -> Option<Silence> {
        self.entries.lock().iter().find(|e| e.silence.id == id && e.silence.tenant == tenant).map(|e| e.silence.clone())
    }

    /// Ids of the active silences matching `labels`.
    pub(crate) fn silenced_by(
        &self,
        tenant: &str,
        labels: &std::collections::BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        self.entries
            .lock()
            .iter()
            .filter(|e| {
                e.silence.tenant == tenant
                    && e.silence.state(now) == SilenceState::Active
                    && matches_all(&e.matchers, labels)
            })
            .map(|e| e.silence.id.clone())
            .collect()
    }
}

/// A random UUID v4, as Alertmanager's silence ids.
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(matchers: &str, from_now_min: i64, to_now_min: i64) -> Silence {
        let now = Utc::now();
        Silence {
            id: String::new(),
            matchers: crate::notify::matchers::parse_matchers(matchers).unwrap().iter().map(ApiMatcher::from).collect(),
            starts_at: now + chrono::Duration::minutes(from_now_min),
            ends_at: now + chrono::Duration::minutes(to_now_min),
            created_by: "me".into(),
            comment: "maintenance".into(),
            updated_at: now,
            tenant: String::new(),
        }
    }

    #[tokio::test]
    async fn silences_persist_match_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        let store = Silences::open(path.clone()).await.unwrap();
        let id = store.upsert("t1", silence(r#"job=~"api|web", env="prod""#, -1, 60)).await.unwrap();
        let labels = |job: &str| [("job".to_string(), job.to_string()), ("env".into(), "prod".into())].into();
        assert_eq!(store.silenced_by("t1", &labels("web"), Utc::now()), vec![id.clone()]);
        assert!(store.silenced_by("t1", &labels("db"), Utc::now()).is_empty());
        assert!(store.silenced_by("t2", &labels("web"), Utc::now()).is_empty(), "silences are per tenant");
        assert!(store.upsert("t1", silence(r#"job=~".*""#, 0, 60)).await.is_err(), "would match everything");

        let reopened = Silences::open(path.clone()).await.unwrap();
        assert_eq!(reopened.list("t1").len(), 1);
        reopened.expire("t1", &id).await.unwrap();
        assert!(reopened.silenced_by("t1", &labels("web"), Utc::now()).is_empty());
        assert!(matches!(reopened.expire("t1", "nope").await, Err(Error::SilenceNotFound(_))));
        let again = Silences::open(path).await.unwrap();
        assert_eq!(again.get("t1", &id).unwrap().state(Utc::now()), SilenceState::Expired);
    }

    #[tokio::test]
    async fn changing_an_active_silences_matchers_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Silences::open(dir.path().join("s.json")).await.unwrap();
        let id = store.upsert("t", silence(r#"a="1""#, -1, 60)).await.unwrap();
        let mut longer = silence(r#"a="1""#, -1, 120);
        longer.id = id.clone();
        assert_eq!(store.upsert("t", longer).await.unwrap(), id, "same matchers: updated in place");
        let mut other = silence(r#"a="2""#, -1, 60);
        other.id = id.clone();
        let new_id = store.upsert("t", other).await.unwrap();
        assert_ne!(new_id, id);
        assert_eq!(store.get("t", &id).unwrap().state(Utc::now()), SilenceState::Expired);
    }
}
