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

# Real peers of the alerting tests: an Alertmanager to forward to, an SMTP server to mail to.
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  apt-get install -y prometheus-alertmanager || { apt-get update && apt-get install -y prometheus-alertmanager; }
fi
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  pip install aiosmtpd || pip install --break-system-packages aiosmtpd
fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
