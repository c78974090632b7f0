#!/usr/bin/env bash
# The project's one test command (the README's second command; .ci/run calls exactly this).
# Installs what the tests need, then checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/corpora ]; then
  echo "error: the conformance corpora are missing: expected ../shared/corpora beside this repository" >&2
  exit 1
fi

# Toolchain components the checks use.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# pyarrow reads a tsdb block in tsdb/tests/blocks.rs (the blocks are standard Parquet).
if ! python3 -c "import pyarrow" >/dev/null 2>&1; then
  pip install pyarrow
fi
# Real peers of the scraping tests (collector/tests/scrape_*.rs): a DNS server for dns_sd_configs,
# node_exporter as a target and Prometheus 2.42 as the reference scraper.
scrape_peers=()
command -v dnsmasq >/dev/null 2>&1 || scrape_peers+=(dnsmasq-base)
command -v prometheus-node-exporter >/dev/null 2>&1 || scrape_peers+=(prometheus-node-exporter)
command -v prometheus >/dev/null 2>&1 || scrape_peers+=(prometheus)
if [ ${#scrape_peers[@]} -gt 0 ]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${scrape_peers[@]}"
fi
# Real peers of the alerting tests: an Alertmanager to forward to, an SMTP server to mail to.
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  apt-get install -y prometheus-alertmanager || { apt-get update && apt-get install -y prometheus-alertmanager; }
fi
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  pip install aiosmtpd || pip install --break-system-packages aiosmtpd
fi
# The Kubernetes manifests (tests/kubernetes.rs): kubectl renders the kustomize overlays,
# kubernetes-validate checks them offline against the Kubernetes schemas.
if ! command -v kubectl >/dev/null 2>&1; then
  apt-get install -y kubectl || { apt-get update && apt-get install -y kubectl; }
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  pip install kubernetes-validate || pip install --break-system-packages kubernetes-validate
fi

# schemathesis fuzzes the HTTP API from docs/openapi.yaml against a live server (tests/e2e.rs).
if ! command -v schemathesis >/dev/null 2>&1; then
  pip install schemathesis || pip install --break-system-packages schemathesis
fi

# The web UI (query-ui/web) is built by query-ui's build.rs with npm; the browser tests
# (tests/ui_browser.rs) drive headless Chromium with playwright-core from web/node_modules.
ui_tools=()
command -v npm >/dev/null 2>&1 || ui_tools+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || ui_tools+=(chromium)
if [ ${#ui_tools[@]} -gt 0 ]; then
  apt-get install -y "${ui_tools[@]}" || { apt-get update && apt-get install -y "${ui_tools[@]}"; }
fi
[ -d query-ui/web/node_modules ] || (cd query-ui/web && npm ci --no-audit --no-fund)

# Incremental caches are for edit-compile loops; here they would only add ~4 GB of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== disk used by target/: $(du -sh target 2>/dev/null | cut -f1)"

# Every cargo-fuzz target (fuzz/) for a few seconds each: a crash fails the run (scripts/fuzz.sh).
echo "== cargo fuzz"
scripts/fuzz.sh 4
