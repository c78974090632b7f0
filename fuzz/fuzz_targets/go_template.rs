//! Go text/template as rule annotations use it (`alerting::template`): parsed and executed with
//! alert data.
#![no_main]
use std::collections::BTreeMap;

use alerting::template::{Template, TemplateData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(template) = Template::parse(text) else { return };
    let data = TemplateData {
        labels: BTreeMap::from([("alertname".into(), "HighLatency".into()), ("job".into(), "api".into())]),
        external_labels: BTreeMap::from([("cluster".into(), "eu1".into())]),
        external_url: "http://tarsier:9090".into(),
        value: 0.75,
        now: 1_700_000_000.0,
    };
    let _ = template.execute(&data, None);
});
