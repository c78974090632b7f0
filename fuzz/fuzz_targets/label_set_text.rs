//! The `{a="b"}` label-set text form (`model::wire::selector_text`): what parses formats back to
//! text that parses to the same labels.
#![no_main]
use libfuzzer_sys::fuzz_target;
use model::wire::selector_text::{format_label_set, parse_label_set};

fuzz_target!(|text: &str| {
    if let Ok(labels) = parse_label_set(text) {
        let formatted = format_label_set(&labels);
        let again = parse_label_set(&formatted).unwrap_or_else(|e| panic!("{formatted:?} does not parse: {e}"));
        assert_eq!(again, labels, "{formatted:?}");
    }
});
