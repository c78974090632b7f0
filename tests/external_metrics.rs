//! The Kubernetes external metrics API over TLS against a real `tarsier run` scraping an
//! application: discovery documents, an ExternalMetricValueList for a rule with the namespace and
//! label selector substituted (Quantity strings, `window`), and Kubernetes Status errors for an
//! unknown metric, an empty result and a bad selector. Expected JSON is written out in full (golden)
//! with the shapes of k8s.io/metrics' external/v1beta1 types. Clients authenticate as the API
//! server's aggregator does, with a front-proxy client certificate (`client_ca_file`,
//! `allowed_names`).

mod support;

use serde_json::{Value, json};
use support::*;

async fn serve_app() -> String {
    serve_metrics_page(
        "# TYPE queue_depth gauge\nqueue_depth{queue=\"orders\",app=\"web\"} 1.5\nqueue_depth{queue=\"mail\",app=\"mailer\"} 7\n",
    )
    .await
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_metrics_api_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.key_pair.serialize_pem()).unwrap();
    // The API server's front-proxy CA and client certificates it and another CA signed.
    let front_proxy_ca = certs::ca("front-proxy-ca");
    std::fs::write(dir.path().join("front-proxy-ca.crt"), front_proxy_ca.cert.pem()).unwrap();
    let identity =
        |(cert, key): (String, String)| reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let aggregator = identity(certs::leaf_with_cn(&front_proxy_ca, &[], Some("front-proxy-client")));
    let intruder = identity(certs::leaf_with_cn(&front_proxy_ca, &[], Some("someone-else")));
    let stranger = identity(certs::leaf_with_cn(&certs::ca("other-ca"), &[], Some("front-proxy-client")));
    let app = serve_app().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_port = free_port();
    let yaml = format!(
        r#"data_dir: {data}
server:
  listen: {listen}
  external_metrics:
    enabled: true
    listen: 127.0.0.1:{tls_port}
    cert_file: {d}/tls.crt
    key_file: {d}/tls.key
    client_ca_file: {d}/front-proxy-ca.crt
    allowed_names: [front-proxy-client]
    metrics:
      - name: queue-depth
        query: 'sum(queue_depth{{job="{{{{namespace}}}}"{{{{selector}}}}}})'
        window: 2m
      - name: queue-depth-by-app
        query: 'sum by (app) (queue_depth{{job="{{{{namespace}}}}"{{{{selector}}}}}})'
collector:
  global:
    scrape_interval: 1s
    scrape_timeout: 1s
  scrape_configs:
  - job_name: shop
    static_configs:
    - targets: ['{app}']
"#,
        data = dir.path().join("data").display(),
        d = dir.path().display(),
    );
    let config = dir.path().join("tarsier.yaml");
    std::fs::write(&config, yaml).unwrap();
    let plain = reqwest::Client::new();
    let mut tarsier = Proc::start(&["run", "--config", config.to_str().unwrap()], &listen);
    tarsier.wait_ready(&plain).await;
    await_series(&plain, &tarsier.base, "queue_depth").await;

    let server_ca = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client_as = |identity: Option<reqwest::Identity>| {
        let builder = reqwest::Client::builder().add_root_certificate(server_ca.clone());
        match identity {
            Some(identity) => builder.identity(identity),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let client = client_as(Some(aggregator));
    let base = format!("https://localhost:{tls_port}");

    // Authentication: no client certificate, or one from another CA, fails the TLS handshake; a
    // name outside allowed_names gets a Kubernetes Status 403.
    let discovery = format!("{base}/apis/external.metrics.k8s.io/v1beta1");
    for (who, anonymous) in [("no certificate", client_as(None)), ("another CA", client_as(Some(stranger)))] {
        let refused = anonymous.get(&discovery).send().await;
        assert!(refused.is_err(), "{who}: refused at the TLS layer, got {refused:?}");
    }
    let (code, body) = get(&client_as(Some(intruder)), &discovery).await;
    assert_eq!(
        (code, body),
        (
            403,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403,
                   "reason": "Forbidden", "message": "\"someone-else\" is not in server.external_metrics.allowed_names"})
        )
    );

    let (code, body) = get(&client, &format!("{base}/apis")).await;
    assert_eq!(code, 200);
    let gv = json!({"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"});
    assert_eq!(
        body,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "external.metrics.k8s.io", "versions": [gv], "preferredVersion": gv}
        ]})
    );
    let (code, body) = get(&client, &format!("{base}/apis/external.metrics.k8s.io/v1beta1")).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1",
        "resources": [
            {"name": "queue-depth", "singularName": "", "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]},
            {"name": "queue-depth-by-app", "singularName": "", "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]}
        ]})
    );

    let values = format!("{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/shop");
    let (code, mut body) = get(&client, &format!("{values}/queue-depth?labelSelector=app%3Dweb")).await;
    assert_eq!(code, 200, "{body}");
    let ts = body["items"][0]["timestamp"].take();
    assert!(ts.as_str().unwrap().ends_with('Z'), "RFC 3339 timestamp: {ts}");
    assert_eq!(
        body,
        json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {},
            "items": [{"metricName": "queue-depth", "metricLabels": {}, "timestamp": null, "value": "1500m", "window": 120}]})
    );
    let (code, body) =
        get(&client, &format!("{values}/queue-depth-by-app?labelSelector=app%20in%20(web,mailer)")).await;
    assert_eq!(code, 200, "{body}");
    let mut got: Vec<(String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["metricLabels"]["app"].as_str().unwrap().into(), i["value"].as_str().unwrap().into()))
        .collect();
    got.sort();
    assert_eq!(got, [("mailer".to_string(), "7".to_string()), ("web".to_string(), "1500m".to_string())]);

    // Errors are Kubernetes Status objects, never an empty list or a 0.
    let status = |code: u16, reason: &str, message: &str| {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    };
    let (code, body) = get(&client, &format!("{values}/nope")).await;
    assert_eq!(
        (code, body),
        (404, status(404, "NotFound", "external metric \"nope\" is not defined in server.external_metrics.metrics"))
    );
    let (code, body) =
        get(&client, &format!("{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/other/queue-depth")).await;
    assert_eq!(code, 404);
    assert_eq!(body["reason"], "NotFound");
    assert!(body["message"].as_str().unwrap().contains("returned no series"), "{body}");
    let (code, body) = get(&client, &format!("{values}/queue-depth?labelSelector=bad-name%3Dx")).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    tarsier.stop();
}
