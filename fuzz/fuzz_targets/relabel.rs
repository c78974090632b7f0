//! Relabel configs (`collector::relabel`): the first line is a `{a="b"}` label set, the rest a
//! YAML list of `relabel_configs`, compiled and applied to it.
#![no_main]
use collector::RelabelConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (labels, yaml) = text.split_once('\n').unwrap_or(("{}", text));
    let Ok(labels) = model::wire::selector_text::parse_label_set(labels) else { return };
    let Ok(configs) = serde_yaml_ng::from_str::<Vec<RelabelConfig>>(yaml) else { return };
    let Ok(steps) = collector::relabel::compile_all(&configs) else { return };
    let _ = collector::relabel::process(&labels, &steps);
});
