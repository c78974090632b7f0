//! `/loki/api/v1/tail` over a real socket with a websocket client, as Grafana's Live mode and
//! `logcli --tail` use it: the first frame holds the lines since `start`, later frames only new
//! lines, each exactly once; bad requests are refused before the upgrade; the connection limit
//! answers 429, to a plain GET too (how the web UI learns why its socket was refused); a browser
//! names its tenant with the `tenant` parameter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use model::{Labels, LogRecord, TenantId};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

struct Server {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    indexer: Arc<indexer::Indexer>,
}

async fn server(config: query_ui::HttpConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let indexer_config =
        indexer::IndexerConfig { commit_interval: Duration::from_millis(50), ..indexer::IndexerConfig::default() };
    let indexer = Arc::new(indexer::Indexer::open(&dir.path().join("indexer"), indexer_config).unwrap());
    let services = query_ui::Services { indexer: Some(indexer.clone()), ..Default::default() };
    let state = query_ui::AppState::new(services, config, Default::default());
    state.set_ready(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, query_ui::router(state)).await.unwrap() });
    Server { _dir: dir, addr, indexer }
}

fn fast() -> query_ui::HttpConfig {
    query_ui::HttpConfig { tail_poll_interval: Duration::from_millis(100), ..query_ui::HttpConfig::default() }
}

fn push(indexer: &indexer::Indexer, lines: &[&str]) {
    push_as(indexer, &TenantId::default_tenant(), lines);
}

fn push_as(indexer: &indexer::Indexer, tenant: &TenantId, lines: &[&str]) {
    let now = model::time::now_ns();
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, line)| LogRecord {
            timestamp_ns: now + i as i64,
            labels: Labels::from_pairs([("job", "api")]),
            line: line.to_string(),
        })
        .collect();
    indexer.append(tenant, records).unwrap();
    indexer.commit().unwrap();
}

/// Lines of every frame received until `want` lines arrived or the deadline passed.
async fn receive<S>(socket: &mut S, want: usize) -> Vec<String>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while lines.len() < want && Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(1), socket.next()).await
        else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        assert!(frame["dropped_entries"].is_null(), "{frame}");
        for stream in frame["streams"].as_array().unwrap() {
            assert_eq!(stream["stream"]["job"], "api", "stream labels are sent: {stream}");
            for value in stream["values"].as_array().unwrap() {
                value[0].as_str().unwrap().parse::<i64>().expect("timestamps are nanosecond strings");
                lines.push(value[1].as_str().unwrap().to_string());
            }
        }
    }
    lines
}

#[tokio::test]
async fn tail_sends_backlog_then_each_new_line_once() {
    let s = server(fast()).await;
    push(&s.indexer, &["old ERROR one", "old info two"]);
    let url = format!("ws://{}/loki/api/v1/tail?query=%7Bjob%3D%22api%22%7D%20%7C%3D%20%22ERROR%22", s.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(receive(&mut socket, 1).await, vec!["old ERROR one"]);
    push(&s.indexer, &["new ERROR three", "new info four", "new ERROR five"]);
    let mut got = receive(&mut socket, 2).await;
    got.sort();
    assert_eq!(got, vec!["new ERROR five", "new ERROR three"]);
    // Nothing is sent twice: after more polls, only the next line arrives.
    push(&s.indexer, &["last ERROR six"]);
    assert_eq!(receive(&mut socket, 1).await, vec!["last ERROR six"]);
}

#[tokio::test]
async fn bad_tails_are_refused_before_the_upgrade() {
    let s = server(fast()).await;
    for (query, status) in [
        ("%7Bjob%3D%22api%22", 400),                                  // unclosed selector
        ("sum(count_over_time(%7Bjob%3D%22api%22%7D%5B1m%5D))", 400), // metric query
        ("%7Bjob%3D%22api%22%7D&delay_for=9", 400),                   // delay_for over 5 s
    ] {
        let url = format!("ws://{}/loki/api/v1/tail?query={query}", s.addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{query}");
            }
            other => panic!("{query}: expected HTTP {status}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tails_past_the_limit_get_429() {
    let s = server(query_ui::HttpConfig { max_tail_connections: 1, ..fast() }).await;
    let url = format!("ws://{}/loki/api/v1/tail?query=%7Bjob%3D%22api%22%7D", s.addr);
    let (first, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(plain_get_status(s.addr).await, 429, "a plain GET says why the upgrade would be refused");
    drop(first);
    // The slot is released when the first tail closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio_tungstenite::connect_async(url.clone()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("slot never released: {e}"),
        }
    }
}

/// The status of `GET /loki/api/v1/tail?query={job="api"}` without a websocket upgrade.
async fn plain_get_status(addr: std::net::SocketAddr) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /loki/api/v1/tail?query=%7Bjob%3D%22api%22%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).await.unwrap();
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {response:?}"))
}

#[tokio::test]
async fn plain_get_is_refused_without_taking_a_slot() {
    let s = server(query_ui::HttpConfig { max_tail_connections: 1, ..fast() }).await;
    assert_eq!(plain_get_status(s.addr).await, 400, "a free slot: only the missing upgrade is wrong");
    let url = format!("ws://{}/loki/api/v1/tail?query=%7Bjob%3D%22api%22%7D", s.addr);
    tokio_tungstenite::connect_async(url).await.expect("the probe released its slot");
}

#[tokio::test]
async fn browsers_name_the_tenant_as_a_parameter() {
    let s = server(fast()).await;
    push_as(&s.indexer, &TenantId::new("team-a").unwrap(), &["team a line"]);
    push(&s.indexer, &["default tenant line"]);
    let url = format!("ws://{}/loki/api/v1/tail?query=%7Bjob%3D%22api%22%7D&tenant=team-a", s.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(receive(&mut socket, 1).await, vec!["team a line"]);
}
