//! Tests of the `_bulk` codec: parsing, document mapping, the response's exact JSON, and
//! properties (never panics; well-formed batches round-trip).

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::labels::Labels;

const NOW: i64 = 1_700_000_000_000_000_000;

#[test]
fn filebeat_batch_maps_time_line_and_labels() {
    let body = concat!(
        r#"{"create":{"_index":"filebeat-8.11.0"}}"#,
        "\n",
        r#"{"@timestamp":"2024-01-02T03:04:05.123Z","message":"GET /x 200","kubernetes":{"namespace":"shop","pod":{"name":"api-1"},"container":{"name":"api"}},"host":{"name":"node-1"},"stream":"stdout"}"#,
        "\n"
    );
    let items = parse(body.as_bytes(), None, NOW).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].action, Action::Create);
    let record = items[0].record.clone().unwrap();
    assert_eq!(record.timestamp_ns, 1_704_164_645_123_000_000);
    assert_eq!(record.line, "GET /x 200");
    assert_eq!(
        record.labels,
        Labels::from_pairs([
            ("index", "filebeat-8.11.0"),
            ("namespace", "shop"),
            ("pod", "api-1"),
            ("container", "api"),
            ("host", "node-1"),
            ("stream", "stdout"),
        ])
    );
}

#[test]
fn fluent_bit_batch_uses_log_field_and_epoch_millis() {
    let body = concat!(
        r#"{"index":{"_type":"_doc"}}"#,
        "\r\n",
        r#"{"@timestamp":1704164645123,"log":"boom\n","kubernetes":{"namespace_name":"ns","pod_name":"p","container_name":"c"},"stream":"stderr"}"#,
    );
    let items = parse(body.as_bytes(), Some("logstash-2024.01.02"), NOW).unwrap();
    let record = items[0].record.clone().unwrap();
    assert_eq!(record.timestamp_ns, 1_704_164_645_123_000_000);
    assert_eq!(record.line, "boom");
    assert_eq!(record.labels.get("index"), Some("logstash-2024.01.02"));
    assert_eq!(record.labels.get("namespace"), Some("ns"));
    assert_eq!(record.labels.get("pod"), Some("p"));
    assert_eq!(record.labels.get("container"), Some("c"));
    assert_eq!(record.labels.get("stream"), Some("stderr"));
}

#[test]
fn document_without_message_is_kept_whole_and_gets_now() {
    let items = parse(b"{\"index\":{\"_index\":\"a\",\"_id\":\"7\"}}\n{\"b\":1,\"host\":\"h\"}\n", None, NOW).unwrap();
    let record = items[0].record.clone().unwrap();
    assert_eq!(items[0].id.as_deref(), Some("7"));
    assert_eq!(record.timestamp_ns, NOW);
    assert_eq!(record.line, r#"{"b":1,"host":"h"}"#);
    assert_eq!(record.labels.get("host"), Some("h"));
}

#[test]
fn time_fallbacks_and_formats() {
    let ns = |doc: Value| document_to_record(doc.to_string().as_bytes(), "i", NOW).map(|r| r.timestamp_ns);
    assert_eq!(ns(json!({"timestamp": "2024-01-02T03:04:05Z"})), Ok(1_704_164_645_000_000_000));
    assert_eq!(ns(json!({"time": "2024-01-02T03:04:05.5"})), Ok(1_704_164_645_500_000_000));
    assert_eq!(ns(json!({"@timestamp": "2024-01-02"})), Ok(1_704_153_600_000_000_000));
    assert_eq!(ns(json!({"@timestamp": "1704164645123"})), Ok(1_704_164_645_123_000_000));
    assert_eq!(ns(json!({"time": "soon"})), Ok(NOW), "an unparsable fallback field is an ordinary field");
    let err = ns(json!({"@timestamp": "yesterday"})).unwrap_err();
    assert!(err.contains("[@timestamp]"), "{err}");
    assert!(ns(json!({"@timestamp": 1e300})).is_err());
}

#[test]
fn bad_documents_and_unsupported_actions_fail_only_their_item() {
    let body = concat!(
        "{\"index\":{\"_index\":\"a\"}}\n",
        "{\"message\":\"ok 1\"}\n",
        "{\"index\":{\"_index\":\"a\"}}\n",
        "{not json\n",
        "{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
        "{\"update\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
        "{\"doc\":{}}\n",
        "{\"create\":{}}\n",
        "{\"message\":\"no index\"}\n",
        "{\"index\":{\"_index\":\"a\"}}\n",
        "[1,2]\n",
        "{\"index\":{\"_index\":\"a\"}}\n",
        "{\"message\":\"ok 2\"}\n",
    );
    let items = parse(body.as_bytes(), None, NOW).unwrap();
    let summary: Vec<(Action, usize, Option<&str>)> =
        items.iter().map(|i| (i.action, i.line_number, i.record.as_ref().err().map(|e| e.error_type))).collect();
    assert_eq!(
        summary,
        vec![
            (Action::Index, 1, None),
            (Action::Index, 3, Some("mapper_parsing_exception")),
            (Action::Delete, 5, Some("illegal_argument_exception")),
            (Action::Update, 6, Some("illegal_argument_exception")),
            (Action::Create, 8, Some("action_request_validation_exception")),
            (Action::Index, 10, Some("mapper_parsing_exception")),
            (Action::Index, 12, None),
        ]
    );
    let bad_json = items[1].record.as_ref().unwrap_err();
    assert!(bad_json.reason.starts_with("line 4: failed to parse source document"), "{}", bad_json.reason);
    assert!(items[2].record.as_ref().unwrap_err().reason.contains("[delete] action is not supported"));
    assert!(
        items[5]
            .record
            .as_ref()
            .unwrap_err()
            .reason
            .contains("line 11: failed to parse: the source document must be a JSON object, found an array")
    );
}

#[test]
fn malformed_action_lines_fail_the_request_naming_the_line() {
    for (body, expected) in [
        ("{\"index\":{}}\n{}\nnot json\n", "line [3]"),
        ("{\"upsert\":{}}\n{}\n", "but found [upsert]"),
        ("\n\n[1]\n", "line [3], expected START_OBJECT"),
        ("{\"index\":{},\"create\":{}}\n", "exactly one action"),
        ("{\"index\":1}\n", "expected an object after [index]"),
    ] {
        let err = parse(body.as_bytes(), Some("i"), NOW).unwrap_err().to_string();
        assert!(err.contains(expected), "{body:?}: {err}");
    }
    assert!(parse(b"\n \n", None, NOW).unwrap_err().to_string().contains("no requests added"));
}

#[test]
fn trailing_action_without_source_is_an_item_error() {
    let items = parse(b"{\"index\":{\"_index\":\"a\"}}", None, NOW).unwrap();
    assert!(items[0].record.as_ref().unwrap_err().reason.contains("no source document line"));
}

#[test]
fn response_golden_json() {
    let items = vec![
        ResponseItem::created(Action::Index, "logs".into(), "abc".into(), 0),
        ResponseItem::created(Action::Create, "logs".into(), "abd".into(), 1),
        ResponseItem::failed(
            Action::Index,
            "logs".into(),
            None,
            ItemError::new("mapper_parsing_exception", "line 6: failed to parse".into()),
        ),
    ];
    let text = serde_json::to_string(&BulkResponse::new(3, items)).unwrap();
    let golden = concat!(
        r#"{"took":3,"errors":true,"items":["#,
        r#"{"index":{"_index":"logs","_id":"abc","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},"#,
        r#"{"create":{"_index":"logs","_id":"abd","_version":1,"result":"created","_shards":{"total":1,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":201}},"#,
        r#"{"index":{"_index":"logs","status":400,"error":{"type":"mapper_parsing_exception","reason":"line 6: failed to parse"}}}"#,
        r#"]}"#
    );
    assert_eq!(text, golden);
    let ok = BulkResponse::new(1, vec![ResponseItem::created(Action::Index, "l".into(), "x".into(), 0)]);
    assert!(!ok.errors);
}

/// A well-formed document as a shipper would send it.
#[derive(Clone, Debug)]
struct Doc {
    action: Action,
    index: String,
    id: Option<String>,
    millis: i64,
    message: String,
    pod: Option<String>,
}

fn doc_strategy() -> impl Strategy<Value = Doc> {
    (
        prop::bool::ANY,
        "[a-z][a-z0-9.-]{0,12}",
        prop::option::of("[A-Za-z0-9_-]{1,20}"),
        0i64..4_000_000_000_000,
        "\\PC{0,40}",
        prop::option::of("[a-z0-9-]{1,12}"),
    )
        .prop_map(|(create, index, id, millis, message, pod)| Doc {
            action: if create { Action::Create } else { Action::Index },
            index,
            id,
            millis,
            message,
            pod,
        })
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body, Some("i"), NOW);
    }

    #[test]
    fn parse_never_panics_on_line_soup(lines in prop::collection::vec(prop::sample::select(vec![
        "{\"index\":{}}", "{\"create\":{\"_index\":\"x\"}}", "{\"delete\":{\"_id\":\"1\"}}", "{\"update\":{}}",
        "{\"message\":\"m\",\"@timestamp\":\"2024-01-01T00:00:00Z\"}", "{\"@timestamp\":-99999999999999999}",
        "{\"@timestamp\":1e308}", "[]", "", "{", "\"s\"", "{\"log\":null,\"message\":{\"a\":[1]}}",
    ]), 0..20)) {
        let _ = parse(lines.join("\n").as_bytes(), None, NOW);
    }

    #[test]
    fn well_formed_batches_round_trip(docs in prop::collection::vec(doc_strategy(), 1..20), crlf in any::<bool>()) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let mut body = String::new();
        for d in &docs {
            let mut meta = json!({"_index": d.index});
            if let Some(id) = &d.id { meta["_id"] = json!(id); }
            body.push_str(&json!({d.action.as_str(): meta}).to_string());
            body.push_str(newline);
            let mut source = json!({"@timestamp": d.millis, "message": d.message});
            if let Some(pod) = &d.pod { source["kubernetes"] = json!({"pod_name": pod}); }
            body.push_str(&source.to_string());
            body.push_str(newline);
        }
        let items = parse(body.as_bytes(), None, NOW).unwrap();
        prop_assert_eq!(items.len(), docs.len());
        for (item, d) in items.iter().zip(&docs) {
            prop_assert_eq!(item.action, d.action);
            prop_assert_eq!(item.index.as_deref(), Some(d.index.as_str()));
            prop_assert_eq!(&item.id, &d.id);
            let record = item.record.as_ref().unwrap();
            prop_assert_eq!(record.timestamp_ns, d.millis * 1_000_000);
            let expected_line = d.message.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&d.message);
            prop_assert_eq!(record.line.as_str(), expected_line);
            prop_assert_eq!(record.labels.get("index"), Some(d.index.as_str()));
            prop_assert_eq!(record.labels.get("pod"), d.pod.as_deref());
        }
    }
}
