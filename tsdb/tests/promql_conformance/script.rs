//! The `.test` script notation lives in `model::notation` (shared with `tarsier test-rules`);
//! this adds the label parsing that needs the PromQL parser.

use model::Labels;
pub use model::notation::{almost_equal, parse_duration, parse_float, split_series_line};

pub fn parse_labels(series: &str) -> Result<Labels, String> {
    if series == "{}" {
        return Ok(Labels::empty());
    }
    let matchers = tsdb::promql::parse_series_selector(series).map_err(|e| e.to_string())?;
    Ok(Labels::from_pairs(matchers.into_iter().map(|m| (m.name, m.value))))
}
