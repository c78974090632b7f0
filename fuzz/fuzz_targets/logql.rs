//! LogQL as the query API receives it (`indexer::logql`): parsed, compiled, and for a log query
//! its filters and pipeline run over the lines after the first line of the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use model::Labels;

fuzz_target!(|text: &str| {
    let (query, lines) = text.split_once('\n').unwrap_or((text, ""));
    let _ = indexer::logql::parse_expr(query);
    let _ = indexer::logql::parse_selector(query);
    let Ok(compiled) = indexer::logql::CompiledQuery::parse(query) else { return };
    let stream = Labels::from_pairs([("app", "api"), ("namespace", "prod"), ("level", "info")]);
    let _ = compiled.selector.matches(&stream);
    for line in lines.split('\n') {
        if compiled.line_matches(line) {
            let _ = compiled.pipeline.process(&stream, line);
        }
    }
});
