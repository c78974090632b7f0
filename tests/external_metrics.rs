//! The Kubernetes external metrics API over TLS against a real `tarsier run` scraping an
//! application: discovery documents, an ExternalMetricValueList for a rule with the namespace and
//! label selector substituted (Quantity strings, `window`), and Kubernetes Status errors for an
//! unknown metric, an empty result and a bad selector. Expected JSON is written out in full (golden)
//! with the shapes of k8s.io/metrics' external/v1beta1 types. Delegated auth as aggregated API
//! servers do it, against a fake API server (`support/kube_reviews.rs`): the front proxy's client
//! certificate (requestheader CA, allowed names) with the user in `X-Remote-User`, honoured only on
//! such a connection; bearer tokens by TokenReview; a SubjectAccessReview per request (denied →
//! 403 with the reason); both cached; the API server failing → 401 / 503.
//!
//! Also the main listener over HTTPS (`server.tls`): mutual TLS, plain HTTP refused, a certificate
//! rotated by a Secret-style symlink swap served to the next connection without a restart, and an
//! agent shipping to it with `agent.tls_config`.

#[path = "support/kube_reviews.rs"]
mod kube_reviews;
mod support;

use std::sync::Arc;

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
    let hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
    let kube = Arc::new(kube_reviews::FakeKubeApi {
        tokens: [
            ("hpa-token".to_string(), (hpa.to_string(), vec!["system:serviceaccounts".to_string()])),
            ("bob-token".to_string(), ("bob".to_string(), vec!["system:authenticated".to_string()])),
        ]
        .into(),
        denied_users: vec!["bob".into()],
        ..Default::default()
    });
    let kube_url = kube_reviews::serve(kube.clone()).await;
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
    api_url: {kube_url}
    authentication:
      requestheader:
        client_ca_file: {d}/front-proxy-ca.crt
        allowed_names: [front-proxy-client]
      token_review:
        enabled: true
        cache_ttl: 10m
    authorization:
      mode: subject_access_review
      cache_ttl: 10m
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
    // A client with an optional certificate and fixed headers (the front proxy's X-Remote-*, or
    // a bearer token).
    let client_as = |identity: Option<reqwest::Identity>, headers: &[(&'static str, &str)]| {
        let headers = headers.iter().map(|(k, v)| (reqwest::header::HeaderName::from_static(k), v.parse().unwrap()));
        let builder =
            reqwest::Client::builder().add_root_certificate(server_ca.clone()).default_headers(headers.collect());
        match identity {
            Some(identity) => builder.identity(identity),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let client = client_as(
        Some(aggregator.clone()),
        &[("x-remote-user", hpa), ("x-remote-group", "system:serviceaccounts"), ("x-remote-extra-scopes", "a")],
    );
    let base = format!("https://localhost:{tls_port}");
    let values = format!("{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/shop");
    let status = |code: u16, reason: &str, message: &str| {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    };

    // Authentication. A certificate from another CA fails the TLS handshake; no credentials, a
    // front-proxy certificate with a name outside allowed_names, or one without X-Remote-User get
    // a Kubernetes Status 401.
    let discovery = format!("{base}/apis/external.metrics.k8s.io/v1beta1");
    let refused = client_as(Some(stranger), &[]).get(&discovery).send().await;
    assert!(refused.is_err(), "another CA: refused at the TLS layer, got {refused:?}");
    assert_eq!(get(&client_as(None, &[]), &discovery).await, (401, status(401, "Unauthorized", "Unauthorized")));
    let (code, body) = get(&client_as(Some(intruder), &[("x-remote-user", hpa)]), &discovery).await;
    let not_allowed = "client certificate common name \"someone-else\" is not in \
                       server.external_metrics.authentication.requestheader.allowed_names";
    assert_eq!((code, body), (401, status(401, "Unauthorized", not_allowed)));
    let (code, _) = get(&client_as(Some(aggregator.clone()), &[]), &discovery).await;
    assert_eq!(code, 401, "a front-proxy certificate without X-Remote-User names nobody");
    assert!(kube.reviews("TokenReview").is_empty() && kube.reviews("SubjectAccessReview").is_empty());

    // The front proxy's user is authorized by a SubjectAccessReview with kube's attributes.
    let (code, body) = get(&client, &format!("{values}/queue-depth?labelSelector=app%3Dweb")).await;
    assert_eq!(code, 200, "{body}");
    let sar = kube.reviews("SubjectAccessReview");
    assert_eq!(sar.len(), 1, "{sar:?}");
    assert_eq!(
        sar[0]["spec"],
        json!({"user": hpa, "groups": ["system:serviceaccounts"], "extra": {"scopes": ["a"]},
               "resourceAttributes": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                                      "resource": "queue-depth", "namespace": "shop", "verb": "list"}})
    );

    // Bearer tokens: a good one is reviewed once and then served from the cache (no second
    // TokenReview nor SubjectAccessReview); a bad one is 401.
    let with_token = |token: &str, extra: &[(&'static str, &str)]| {
        let mut headers = vec![("authorization", format!("Bearer {token}"))];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let headers: Vec<(&'static str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client_as(None, &headers)
    };
    let hpa_token = with_token("hpa-token", &[]);
    for _ in 0..2 {
        let (code, body) = get(&hpa_token, &format!("{values}/queue-depth-by-app")).await;
        assert_eq!(code, 200, "{body}");
    }
    let token_reviews = kube.reviews("TokenReview");
    assert_eq!(token_reviews.len(), 1, "the second request is a cache hit: {token_reviews:?}");
    assert_eq!(token_reviews[0]["spec"], json!({"token": "hpa-token"}));
    assert_eq!(kube.reviews("SubjectAccessReview").len(), 2, "one more SAR, for the token's request only");
    let (code, body) = get(&with_token("forged", &[]), &discovery).await;
    assert_eq!((code, body), (401, status(401, "Unauthorized", "invalid bearer token")));

    // Authorization denied → 403 with the reason. X-Remote-User on a connection without the
    // front-proxy certificate is ignored: the user is the token's.
    let bob = with_token("bob-token", &[("x-remote-user", hpa)]);
    let (code, body) = get(&bob, &format!("{values}/queue-depth")).await;
    let denied = "queue-depth.external.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \
                  \"queue-depth\" in API group \"external.metrics.k8s.io\" in the namespace \"shop\": no RBAC policy matched";
    assert_eq!((code, body), (403, status(403, "Forbidden", denied)));
    assert_eq!(kube.reviews("SubjectAccessReview").last().unwrap()["spec"]["user"], "bob");

    // The API server fails: a new token cannot be checked (401), a new request of a known user
    // cannot be authorized (503); cached answers still serve.
    kube.set_broken(true);
    let (code, body) = get(&with_token("new-token", &[]), &discovery).await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")), "{body}");
    let (code, body) = get(&hpa_token, &discovery).await;
    assert_eq!(
        (code, body),
        (503, status(503, "ServiceUnavailable", "authorization could not be checked (SubjectAccessReview failed)"))
    );
    assert_eq!(get(&hpa_token, &format!("{values}/queue-depth-by-app")).await.0, 200, "cached");
    kube.set_broken(false);

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

/// Lays out `files` like a mounted Secret: `<mount>/<version>/<name>`, `<mount>/..data` a symlink
/// to the version, `<mount>/<name>` a symlink into `..data`. Called again with a new version, it
/// swaps `..data` in one rename, as the kubelet does when cert-manager renews the Secret.
fn mount_secret(mount: &std::path::Path, version: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(mount.join(version)).unwrap();
    for (name, text) in files {
        std::fs::write(mount.join(version).join(name), text).unwrap();
        let link = mount.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
    std::os::unix::fs::symlink(version, mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_over_https_with_client_certificates_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (certs::ca("tarsier-server-ca"), certs::ca("tarsier-client-ca"));
    let mount = dir.path().join("tls");
    let (cert_v1, key_v1) = certs::leaf(&server_ca, &["localhost"]);
    mount_secret(&mount, "v1", &[("tls.crt", &cert_v1), ("tls.key", &key_v1)]);
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, server_ca.cert.pem()).unwrap();
    let client_ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&client_ca_file, client_ca.cert.pem()).unwrap();
    let (agent_cert, agent_key) = certs::leaf_with_cn(&client_ca, &[], Some("agent"));
    std::fs::write(dir.path().join("agent.crt"), &agent_cert).unwrap();
    std::fs::write(dir.path().join("agent.key"), &agent_key).unwrap();
    let (user_cert, user_key) = certs::leaf_with_cn(&client_ca, &[], Some("someone"));

    let port = free_port();
    let server_yaml = format!(
        "data_dir: {data}\nserver:\n  listen: 127.0.0.1:{port}\n  tls:\n    cert_file: {m}/tls.crt\n    \
         key_file: {m}/tls.key\n    client_ca_file: {ca}\n    min_version: 1.2\nindexer:\n  commit_interval: 200ms\n",
        data = dir.path().join("server-data").display(),
        m = mount.display(),
        ca = client_ca_file.display(),
    );
    std::fs::write(dir.path().join("server.yaml"), server_yaml).unwrap();
    let mut server = Proc::start(&["server", "--config", dir.path().join("server.yaml").to_str().unwrap()], "unused");
    server.base = format!("https://localhost:{port}");

    let root = reqwest::Certificate::from_pem(server_ca.cert.pem().as_bytes()).unwrap();
    let identity = reqwest::Identity::from_pem(format!("{user_cert}{user_key}").as_bytes()).unwrap();
    // No pooling: every request is a new connection and a new handshake.
    let client_with = |identity: Option<reqwest::Identity>| {
        let builder =
            reqwest::Client::builder().add_root_certificate(root.clone()).tls_info(true).pool_max_idle_per_host(0);
        match identity {
            Some(identity) => builder.identity(identity),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let client = client_with(Some(identity));
    server.wait_ready(&client).await;

    let peer_certificate = |response: &reqwest::Response| {
        response.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate()).unwrap().to_vec()
    };
    let der = |pem: &str| pem::der(pem);
    let ready = client.get(format!("{}/-/ready", server.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(peer_certificate(&ready), der(&cert_v1));
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/-/ready")).send().await;
    assert!(plain.is_err(), "plain HTTP on a TLS listener is refused: {plain:?}");
    let anonymous = client_with(None).get(format!("{}/-/ready", server.base)).send().await;
    assert!(anonymous.is_err(), "no client certificate fails the handshake: {anonymous:?}");

    // An agent ships over HTTPS with its own client certificate.
    let log = dir.path().join("node.log");
    let agent_listen = format!("127.0.0.1:{}", free_port());
    let agent_yaml = format!(
        "data_dir: {data}\nserver:\n  listen: {agent_listen}\ncollector:\n  tail:\n    include: ['{log}']\n    \
         rescan_interval: 200ms\n  shipping:\n    batch_max_wait: 50ms\nagent:\n  server_url: {base}\n  \
         tls_config:\n    ca_file: {ca}\n    cert_file: {d}/agent.crt\n    key_file: {d}/agent.key\n",
        data = dir.path().join("agent-data").display(),
        log = log.display(),
        base = server.base,
        ca = ca_file.display(),
        d = dir.path().display(),
    );
    std::fs::write(dir.path().join("agent.yaml"), agent_yaml).unwrap();
    append_line(&log, "shipped over tls before the rotation");
    let mut agent = Proc::start(&["agent", "--config", dir.path().join("agent.yaml").to_str().unwrap()], &agent_listen);
    agent.wait_ready(&reqwest::Client::new()).await;
    let selector = format!("{{filename=\"{}\"}}", log.display());
    await_lines(&client, &server.base, &selector, 1).await;

    // cert-manager renews: a new pair behind the same paths. The next connection sees it.
    let (cert_v2, key_v2) = certs::leaf(&server_ca, &["localhost"]);
    mount_secret(&mount, "v2", &[("tls.crt", &cert_v2), ("tls.key", &key_v2)]);
    let started = std::time::Instant::now();
    loop {
        let response = client.get(format!("{}/-/ready", server.base)).send().await.unwrap();
        if peer_certificate(&response) == der(&cert_v2) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the renewed certificate was not served within {DEADLINE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tarsier_tls_certificate_reloads_total{cert_file="), "{metrics}");
    // The agent's pooled connection or its next handshake: either way shipping goes on.
    append_line(&log, "shipped over tls after the rotation");
    await_lines(&client, &server.base, &selector, 2).await;
    agent.stop();

    // The clients get a new CA: the server verifies new handshakes against the new bundle
    // without a restart (#10), and a broken bundle keeps the one that works.
    let next_ca = certs::ca("tarsier-client-ca-2");
    let (next_cert, next_key) = certs::leaf_with_cn(&next_ca, &[], Some("someone"));
    let next_client =
        client_with(Some(reqwest::Identity::from_pem(format!("{next_cert}{next_key}").as_bytes()).unwrap()));
    let replace = |text: &str| {
        std::fs::write(dir.path().join("client-ca.new"), text).unwrap();
        std::fs::rename(dir.path().join("client-ca.new"), &client_ca_file).unwrap();
    };
    replace(&next_ca.cert.pem());
    let ready = format!("{}/-/ready", server.base);
    let started = std::time::Instant::now();
    while next_client.get(&ready).send().await.is_err() {
        assert!(started.elapsed() < DEADLINE, "the new client CA was not used within {DEADLINE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let old = client.get(&ready).send().await;
    assert!(old.is_err(), "a certificate of the replaced client CA is refused: {old:?}");
    replace("-----BEGIN CERTIFICATE-----\nhalf written\n");
    let failure = format!(
        "tarsier_tls_certificate_reloads_total{{cert_file=\"{}\",result=\"failure\"}} 1",
        client_ca_file.display()
    );
    loop {
        let metrics = next_client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
        if metrics.contains(&failure) {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "the broken client CA was never read: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(next_client.get(&ready).send().await.unwrap().status(), 200, "the working bundle stays");
    server.stop();
}

/// PEM → DER of the first certificate.
mod pem {
    pub fn der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }
}
