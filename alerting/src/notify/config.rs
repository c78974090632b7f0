//! The notification config in Alertmanager's format (`global`, `route`, `receivers`,
//! `inhibit_rules`, `time_intervals`/`mute_time_intervals`, `templates`), so an existing
//! `alertmanager.yml` pastes in for what Tarsier supports and anything else fails loudly.
//! [`NotifyConfig::validate`] turns the raw serde tree into a checked [`Plan`]; its errors name the
//! key path (`route.routes[1].matchers[0]`, `receivers[2].dingtalk_configs[0].secret`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::matchers::{MatchOp, Matcher, matches_all, parse_matchers};
use super::receivers::{ChatConfig, EmailConfig, ForwardConfig, Integration, SlackConfig, WebhookConfig};
use super::timeinterval::{NamedTimeInterval, TimeInterval};
use crate::Error;
use crate::template::NotifyTemplates;

/// A secret string (webhook URL, password): `Debug` and logs never show it. A value written as
/// `${NAME}` is read from the environment variable `NAME`.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

thread_local! {
    /// Set while [`NotifyConfig::redacted_yaml`] serializes: secrets then render as `<secret>`.
    static REDACTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REDACTING.get() { serializer.serialize_str("<secret>") } else { serializer.serialize_str(&self.0) }
    }
}

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Resolves a secret from its inline value (or `${ENV}`) or its `*_file` twin; `key` names it in
/// errors. Reads the file once, at validation.
pub(crate) fn resolve_secret(
    value: &Option<Secret>,
    file: &Option<String>,
    key: &str,
) -> Result<Option<Secret>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!("{key}: set either {key} or {key}_file, not both")),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(Secret(s.trim().to_string())))
            .map_err(|e| format!("{key}_file: reading {path}: {e}")),
        (Some(Secret(v)), None) => match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(var) => std::env::var(var)
                .map(|s| Some(Secret(s)))
                .map_err(|_| format!("{key}: environment variable {var} is not set")),
            None => Ok(Some(Secret(v.clone()))),
        },
        (None, None) => Ok(None),
    }
}

/// The whole notification config, as in `alertmanager.yml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Defaults shared by receivers.
    #[serde(default)]
    pub global: GlobalConfig,
    /// The root of the routing tree.
    pub route: RouteConfig,
    /// Named receivers.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Inhibition rules.
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named time intervals.
    #[serde(default)]
    pub time_intervals: Vec<NamedTimeInterval>,
    /// Alertmanager's older name for `time_intervals`.
    #[serde(default)]
    pub mute_time_intervals: Vec<NamedTimeInterval>,
    /// Go template files (globs) whose `{{ define }}`s receiver fields may call.
    #[serde(default)]
    pub templates: Vec<String>,
}

/// `global:` defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How long an alert without `endsAt` stays firing after it was last received.
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: String,
    /// Default email sender.
    #[serde(default)]
    pub smtp_from: Option<String>,
    /// Default EHLO name.
    #[serde(default)]
    pub smtp_hello: Option<String>,
    /// Default SMTP server `host:port`.
    #[serde(default)]
    pub smtp_smarthost: Option<String>,
    /// Default SMTP user.
    #[serde(default)]
    pub smtp_auth_username: Option<String>,
    /// Default SMTP password.
    #[serde(default)]
    pub smtp_auth_password: Option<Secret>,
    /// Default SMTP password file.
    #[serde(default)]
    pub smtp_auth_password_file: Option<String>,
    /// Accepted for compatibility; PLAIN/LOGIN use the username.
    #[serde(default)]
    pub smtp_auth_identity: Option<String>,
    /// Require STARTTLS (default true, as Alertmanager).
    #[serde(default = "yes")]
    pub smtp_require_tls: bool,
    /// Default Slack webhook URL.
    #[serde(default)]
    pub slack_api_url: Option<Secret>,
    /// Default Slack webhook URL file.
    #[serde(default)]
    pub slack_api_url_file: Option<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults")
    }
}

fn default_resolve_timeout() -> String {
    "5m".into()
}

pub(crate) fn yes() -> bool {
    true
}

/// One node of the routing tree.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver name (inherited when absent).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels to group by; `['...']` groups by all labels (inherited when absent).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Keep matching siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Matchers (`a="b"`, `c=~"d.*"`).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Old-style equality matchers.
    #[serde(default, rename = "match")]
    pub match_: BTreeMap<String, String>,
    /// Old-style regex matchers.
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Wait before the first notification of a new group (default 30s).
    #[serde(default)]
    pub group_wait: Option<String>,
    /// Wait between notifications about a group that changed (default 5m).
    #[serde(default)]
    pub group_interval: Option<String>,
    /// Wait before re-sending an unchanged notification (default 4h).
    #[serde(default)]
    pub repeat_interval: Option<String>,
    /// Names of time intervals during which this route is muted.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside of which this route is muted.
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Child routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// A named receiver with its integrations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The name routes refer to.
    pub name: String,
    /// Alertmanager webhook (payload version 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
    /// Slack incoming webhooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<SlackConfig>,
    /// Microsoft Teams through Workflows (Adaptive Card).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub msteamsv2_configs: Vec<ChatConfig>,
    /// Email over SMTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<EmailConfig>,
    /// Feishu/Lark custom bot (Tarsier extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feishu_configs: Vec<ChatConfig>,
    /// DingTalk robot (Tarsier extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dingtalk_configs: Vec<ChatConfig>,
    /// WeCom group robot (Tarsier extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wecom_configs: Vec<ChatConfig>,
    /// Forwarding to another Alertmanager's `/api/v2/alerts` (Tarsier extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alertmanager_configs: Vec<ForwardConfig>,
}

/// One inhibition rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers a firing alert must satisfy to inhibit.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Matchers an alert must satisfy to be inhibited.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Old-style source equality matchers.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Old-style source regex matchers.
    #[serde(default)]
    pub source_match_re: BTreeMap<String, String>,
    /// Old-style target equality matchers.
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    /// Old-style target regex matchers.
    #[serde(default)]
    pub target_match_re: BTreeMap<String, String>,
    /// Labels that must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// How a route groups alerts.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// `['...']`: every label.
    All,
    /// These labels (possibly none: one group for the route).
    Labels(Vec<String>),
}

/// A checked route node; `Plan::routes[0]` is the root.
#[derive(Clone, Debug)]
pub struct RouteNode {
    /// Receiver name.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// First-notification delay.
    pub group_wait: Duration,
    /// Delay between notifications about a changed group.
    pub group_interval: Duration,
    /// Delay before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// This node's own matchers.
    pub matchers: Vec<Matcher>,
    /// `continue`.
    pub continue_: bool,
    /// Indices of the children.
    pub children: Vec<usize>,
    /// Muting interval names.
    pub mute_time_intervals: Vec<String>,
    /// Active interval names.
    pub active_time_intervals: Vec<String>,
    /// Alertmanager's route key (`{}/{severity="page"}`), the prefix of group keys.
    pub key: String,
    /// Where the route sits in the file (`route.routes[1]`): sibling routes with the same
    /// matchers share a key but are different routes, whose groups stay apart (as Alertmanager's
    /// groups per route).
    pub id: String,
}

/// A checked inhibition rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    /// Source matchers.
    pub source: Vec<Matcher>,
    /// Target matchers.
    pub target: Vec<Matcher>,
    /// Equal labels.
    pub equal: Vec<String>,
}

/// The checked config the dispatcher runs.
#[derive(Debug)]
pub struct Plan {
    /// The routing tree, root first.
    pub routes: Vec<RouteNode>,
    /// Integrations per receiver name.
    pub receivers: HashMap<String, Vec<Integration>>,
    /// Inhibition rules.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Time intervals by name.
    pub time_intervals: HashMap<String, Vec<TimeInterval>>,
    /// `global.resolve_timeout`.
    pub resolve_timeout: Duration,
    /// The config as YAML with every secret as `<secret>` (`/api/v2/status`'s `config.original`).
    pub redacted_yaml: String,
}

/// Parses a Prometheus-style duration (`30s`, `5m`, `1h30m`, `1d`, `100ms`).
pub(crate) fn parse_duration(s: &str, key: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{key}: {s:?} is not a duration: {e}"))
}

fn invalid(key: impl Into<String>) -> impl FnOnce(String) -> Error {
    let key = key.into();
    move |message| Error::InvalidNotifyConfig { key, message }
}

/// Like [`invalid`] for messages that start with a sub-path (`webhook_configs[0].url: ...`):
/// the sub-path joins the key.
fn invalid_under(prefix: impl Into<String>) -> impl FnOnce(String) -> Error {
    let prefix = prefix.into();
    move |message| match message.split_once(": ") {
        Some((sub, rest)) if !sub.contains(' ') => {
            Error::InvalidNotifyConfig { key: format!("{prefix}.{sub}"), message: rest.to_string() }
        }
        _ => Error::InvalidNotifyConfig { key: prefix, message },
    }
}

impl NotifyConfig {
    /// What runs without `alerting.notifications_file`: one route to a receiver with no
    /// integrations, so alerts, silences and status are still served (amtool, Grafana, the UI)
    /// and nothing is sent anywhere.
    pub fn empty() -> Self {
        Self::from_yaml("route:\n  receiver: \"null\"\nreceivers:\n- name: \"null\"\n")
            .expect("the empty notification config parses")
    }

    /// Parses YAML; unknown keys are errors naming the key.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        serde_yaml_ng::from_str(text)
            .map_err(|e| Error::InvalidNotifyConfig { key: "config".into(), message: e.to_string() })
    }

    /// The config as YAML, every [`Secret`] (URLs with tokens, passwords, signing keys) rendered
    /// as `<secret>`: what Alertmanager shows as its `config.original`.
    pub fn redacted_yaml(&self) -> String {
        REDACTING.set(true);
        let yaml = serde_yaml_ng::to_string(self);
        REDACTING.set(false);
        yaml.unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// Checks the config and builds the [`Plan`]; errors name the key path.
    pub fn validate(&self) -> Result<Plan, Error> {
        let templates = NotifyTemplates::load(&self.templates).map_err(invalid("templates"))?;
        let resolve_timeout =
            parse_duration(&self.global.resolve_timeout, "global.resolve_timeout").map_err(invalid("global"))?;
        let mut time_intervals = HashMap::new();
        for (field, list) in
            [("time_intervals", &self.time_intervals), ("mute_time_intervals", &self.mute_time_intervals)]
        {
            for (i, ti) in list.iter().enumerate() {
                let key = format!("{field}[{i}]");
                let specs = ti
                    .time_intervals
                    .iter()
                    .enumerate()
                    .map(|(j, s)| TimeInterval::from_spec(s).map_err(|e| format!("time_intervals[{j}].{e}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid_under(key.clone()))?;
                if time_intervals.insert(ti.name.clone(), specs).is_some() {
                    return Err(invalid(key)(format!("time interval {:?} is defined twice", ti.name)));
                }
            }
        }
        let mut receivers = HashMap::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("receivers[{i}]");
            if r.name.is_empty() {
                return Err(invalid(key)("name is empty".into()));
            }
            let integrations =
                super::receivers::build(r, &self.global, &templates).map_err(invalid_under(key.clone()))?;
            if receivers.insert(r.name.clone(), integrations).is_some() {
                return Err(invalid(key)(format!("receiver {:?} is defined twice", r.name)));
            }
        }
        let mut routes = Vec::new();
        if self.route.receiver.is_none() {
            return Err(invalid("route.receiver")("the root route needs a receiver".into()));
        }
        if !self.route.matchers.is_empty() || !self.route.match_.is_empty() || !self.route.match_re.is_empty() {
            return Err(invalid("route.matchers")("the root route must not have matchers".into()));
        }
        let root_defaults = RouteNode {
            receiver: String::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Vec::new(),
            continue_: false,
            children: Vec::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            key: String::new(),
            id: String::new(),
        };
        let ctx = RouteCtx { receivers: &receivers, intervals: &time_intervals };
        add_route(&self.route, &root_defaults, "route", None, &ctx, &mut routes)?;
        let inhibit_rules = self
            .inhibit_rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = format!("inhibit_rules[{i}]");
                Ok(InhibitRule {
                    source: matchers_of(
                        &r.source_matchers,
                        &r.source_match,
                        &r.source_match_re,
                        &format!("{key}.source"),
                    )?,
                    target: matchers_of(
                        &r.target_matchers,
                        &r.target_match,
                        &r.target_match_re,
                        &format!("{key}.target"),
                    )?,
                    equal: r.equal.clone(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let redacted_yaml = self.redacted_yaml();
        Ok(Plan { routes, receivers, inhibit_rules, time_intervals, resolve_timeout, redacted_yaml })
    }
}

struct RouteCtx<'a> {
    receivers: &'a HashMap<String, Vec<Integration>>,
    intervals: &'a HashMap<String, Vec<TimeInterval>>,
}

fn matchers_of(
    list: &[String],
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
    key: &str,
) -> Result<Vec<Matcher>, Error> {
    let mut out = Vec::new();
    for (i, line) in list.iter().enumerate() {
        out.extend(parse_matchers(line).map_err(invalid(format!("{key}_matchers[{i}]")))?);
    }
    for (name, value) in eq {
        out.push(Matcher::new(name, MatchOp::Equal, value).map_err(invalid(format!("{key}_match.{name}")))?);
    }
    for (name, value) in re {
        out.push(Matcher::new(name, MatchOp::Regex, value).map_err(invalid(format!("{key}_match_re.{name}")))?);
    }
    Ok(out)
}

fn add_route(
    cfg: &RouteConfig,
    parent: &RouteNode,
    key: &str,
    parent_idx: Option<usize>,
    ctx: &RouteCtx<'_>,
    routes: &mut Vec<RouteNode>,
) -> Result<usize, Error> {
    let mut matchers = Vec::new();
    for (i, line) in cfg.matchers.iter().enumerate() {
        matchers.extend(parse_matchers(line).map_err(invalid(format!("{key}.matchers[{i}]")))?);
    }
    for (name, value) in &cfg.match_ {
        matchers.push(Matcher::new(name, MatchOp::Equal, value).map_err(invalid(format!("{key}.match.{name}")))?);
    }
    for (name, value) in &cfg.match_re {
        matchers.push(Matcher::new(name, MatchOp::Regex, value).map_err(invalid(format!("{key}.match_re.{name}")))?);
    }
    let receiver = cfg.receiver.clone().unwrap_or_else(|| parent.receiver.clone());
    if !ctx.receivers.contains_key(&receiver) {
        return Err(invalid(format!("{key}.receiver"))(format!("receiver {receiver:?} is not defined")));
    }
    let group_by = match &cfg.group_by {
        None => parent.group_by.clone(),
        Some(labels) if labels.iter().any(|l| l == "...") => {
            if labels.len() > 1 {
                return Err(invalid(format!("{key}.group_by"))("'...' must be the only element".into()));
            }
            GroupBy::All
        }
        Some(labels) => {
            let mut seen = HashSet::new();
            for l in labels {
                if !seen.insert(l) {
                    return Err(invalid(format!("{key}.group_by"))(format!("label {l:?} is listed twice")));
                }
            }
            GroupBy::Labels(labels.clone())
        }
    };
    let dur = |v: &Option<String>, name: &str, inherited: Duration| -> Result<Duration, Error> {
        match v {
            None => Ok(inherited),
            Some(s) => {
                let d = parse_duration(s, name).map_err(invalid(format!("{key}.{name}")))?;
                if d.is_zero() && name != "group_wait" {
                    return Err(invalid(format!("{key}.{name}"))("must be greater than zero".into()));
                }
                Ok(d)
            }
        }
    };
    for (field, names) in
        [("mute_time_intervals", &cfg.mute_time_intervals), ("active_time_intervals", &cfg.active_time_intervals)]
    {
        for (i, n) in names.iter().enumerate() {
            if !ctx.intervals.contains_key(n) {
                return Err(invalid(format!("{key}.{field}[{i}]"))(format!("time interval {n:?} is not defined")));
            }
        }
    }
    let own = format!("{{{}}}", matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
    let node = RouteNode {
        receiver,
        group_by,
        group_wait: dur(&cfg.group_wait, "group_wait", parent.group_wait)?,
        group_interval: dur(&cfg.group_interval, "group_interval", parent.group_interval)?,
        repeat_interval: dur(&cfg.repeat_interval, "repeat_interval", parent.repeat_interval)?,
        continue_: cfg.continue_,
        children: Vec::new(),
        mute_time_intervals: cfg.mute_time_intervals.clone(),
        active_time_intervals: cfg.active_time_intervals.clone(),
        key: if parent_idx.is_none() { own } else { format!("{}/{own}", parent.key) },
        id: key.to_string(),
        matchers,
    };
    let idx = routes.len();
    routes.push(node.clone());
    for (i, child) in cfg.routes.iter().enumerate() {
        let c = add_route(child, &node, &format!("{key}.routes[{i}]"), Some(idx), ctx, routes)?;
        routes[idx].children.push(c);
    }
    Ok(idx)
}

impl Plan {
    /// The routes an alert with `labels` goes to, as Alertmanager's `Route.Match`: depth first,
    /// a matching child stops its siblings unless it has `continue`, and a node none of whose
    /// children match takes the alert itself.
    pub fn match_routes(&self, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out = Vec::new();
        self.match_from(0, labels, &mut out);
        out
    }

    fn match_from(&self, idx: usize, labels: &BTreeMap<String, String>, out: &mut Vec<usize>) {
        let node = &self.routes[idx];
        if !matches_all(&node.matchers, labels) {
            return;
        }
        let before = out.len();
        for &c in &node.children {
            let n = out.len();
            self.match_from(c, labels, out);
            if out.len() > n && !self.routes[c].continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(idx);
        }
    }

    /// Whether route `idx` is muted at `now` by its mute or active time intervals.
    pub fn route_muted(&self, idx: usize, now: chrono::DateTime<chrono::Utc>) -> bool {
        let node = &self.routes[idx];
        let in_any = |names: &[String]| {
            names.iter().any(|n| self.time_intervals.get(n).is_some_and(|tis| tis.iter().any(|t| t.contains(now))))
        };
        in_any(&node.mute_time_intervals)
            || (!node.active_time_intervals.is_empty() && !in_any(&node.active_time_intervals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      group_wait: 10s
    - match_re: {team: "db|storage"}
      receiver: db
      group_by: ['...']
      routes:
        - match: {env: prod}
          receiver: pager
    - matchers: ['team="web"']
      receiver: db
receivers:
  - name: default
  - name: pager
  - name: db
"#;

    #[test]
    fn routes_match_like_alertmanager() {
        let plan = NotifyConfig::from_yaml(CONFIG).unwrap().validate().unwrap();
        let names = |l: &[(&str, &str)]| {
            plan.match_routes(&labels(l)).into_iter().map(|i| plan.routes[i].key.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&[("alertname", "x")]), vec!["{}"]);
        assert_eq!(
            names(&[("severity", "critical"), ("team", "db")]),
            vec![r#"{}/{severity="critical"}"#, r#"{}/{team=~"db|storage"}"#]
        );
        assert_eq!(names(&[("team", "db"), ("env", "prod")]), vec![r#"{}/{team=~"db|storage"}/{env="prod"}"#]);
        let crit = &plan.routes[1];
        assert_eq!((crit.group_wait, crit.group_interval), (Duration::from_secs(10), Duration::from_secs(300)));
        assert_eq!(plan.routes[3].group_by, GroupBy::All, "children inherit group_by");
    }

    #[test]
    fn errors_name_the_key_path() {
        let bad =
            |yaml: &str| NotifyConfig::from_yaml(yaml).and_then(|c| c.validate().map(|_| ())).unwrap_err().to_string();
        assert!(bad("route: {receiver: x}\nreceivers: [{name: y}]").contains("route.receiver"));
        assert!(
            bad("route: {receiver: y, routes: [{matchers: ['a=~\"(\"']}]}\nreceivers: [{name: y}]")
                .contains("route.routes[0].matchers[0]")
        );
        assert!(
            bad("route: {receiver: y}\nreceivers: [{name: y, pagerduty_configs: []}]").contains("pagerduty_configs")
        );
        assert!(bad("route: {receiver: y, group_wait: soon}\nreceivers: [{name: y}]").contains("route.group_wait"));
        assert!(
            bad("route: {receiver: y, mute_time_intervals: [nights]}\nreceivers: [{name: y}]")
                .contains("route.mute_time_intervals[0]")
        );
        assert!(
            bad("route: {receiver: y}\nreceivers: [{name: y, webhook_configs: [{}]}]")
                .contains("receivers[0].webhook_configs[0].url")
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let cfg = NotifyConfig::from_yaml(
            "route: {receiver: y}\nreceivers: [{name: y, dingtalk_configs: [{webhook_url: 'https://x/hook?access_token=TOPSECRET', secret: SEC123}]}]",
        )
        .unwrap();
        let plan = cfg.validate().unwrap();
        for shown in [format!("{cfg:?}"), format!("{plan:?}"), cfg.redacted_yaml()] {
            assert!(!shown.contains("TOPSECRET") && !shown.contains("SEC123"), "{shown}");
        }
        assert!(cfg.redacted_yaml().contains("webhook_url: <secret>"), "{}", cfg.redacted_yaml());
        assert!(serde_yaml_ng::to_string(&cfg).unwrap().contains("SEC123"), "plain serialization keeps secrets");
    }

    #[test]
    fn time_intervals_mute_and_activate_routes() {
        let plan = NotifyConfig::from_yaml(
            r#"
route:
  receiver: y
  routes:
    - {matchers: ['a="1"'], mute_time_intervals: [weekend]}
    - {matchers: ['a="2"'], active_time_intervals: [weekend]}
receivers: [{name: y}]
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: [saturday, sunday]}]
"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let sat = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().to_utc();
        let mon = chrono::DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().to_utc();
        assert!(plan.route_muted(1, sat) && !plan.route_muted(1, mon));
        assert!(!plan.route_muted(2, sat) && plan.route_muted(2, mon));
    }
}
