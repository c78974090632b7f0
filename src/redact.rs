//! The effective configuration as YAML with its secrets replaced by `<secret>`, for the UI's
//! status page (`GET /api/v1/status/config`). Secret-looking keys (passwords, tokens, credentials,
//! webhook URLs) are redacted wherever they appear, so a key added later is covered without a
//! list to maintain; `*_file` keys name a path, not a secret, and stay. A URL's `user:password@`
//! is redacted too.

use serde_yaml_ng::Value;

use crate::config::Config;

pub const SECRET: &str = "<secret>";

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_file") || k.ends_with("_files") {
        return false;
    }
    [
        "password",
        "secret",
        "token",
        "credentials",
        "api_key",
        "apikey",
        "webhook_url",
        "api_url",
        "routing_key",
        "service_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `scheme://user:pass@host` → `scheme://user:<secret>@host`.
fn redact_userinfo(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    if rest[..at].contains('/') {
        return None;
    }
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{SECRET}@{}", &rest[at + 1..]))
}

fn redact(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                if k.as_str().is_some_and(is_secret_key) && !v.is_null() {
                    *v = Value::String(SECRET.into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Sequence(seq) => seq.iter_mut().for_each(redact),
        Value::String(s) => {
            if let Some(r) = redact_userinfo(s) {
                *s = r;
            }
        }
        Value::Tagged(t) => redact(&mut t.value),
        _ => {}
    }
}

/// The configuration rendered as YAML with every secret replaced by [`SECRET`].
pub fn redacted_config_yaml(config: &Config) -> String {
    match serde_yaml_ng::to_value(config) {
        Ok(mut v) => {
            redact(&mut v);
            serde_yaml_ng::to_string(&v).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
        }
        Err(e) => format!("# cannot render the configuration: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_tokens_and_url_credentials_are_redacted_but_file_paths_stay() {
        let config = Config::from_yaml(
            r#"
collector:
  scrape_configs:
    - job_name: app
      static_configs: [{targets: ["127.0.0.1:9100"]}]
      basic_auth: {username: bob, password: hunter2}
    - job_name: other
      static_configs: [{targets: ["127.0.0.1:9101"]}]
      authorization: {credentials_file: /etc/token}
agent:
  server_url: "http://bob:hunter3@example.com:9470"
"#,
        )
        .expect("valid config");
        let yaml = redacted_config_yaml(&config);
        assert!(!yaml.contains("hunter2") && !yaml.contains("hunter3"), "{yaml}");
        assert!(yaml.contains("password: <secret>"), "{yaml}");
        assert!(yaml.contains("http://bob:<secret>@example.com:9470"), "{yaml}");
        assert!(yaml.contains("/etc/token"), "a *_file path is not a secret: {yaml}");
        assert!(yaml.contains("username: bob"), "{yaml}");
    }
}
