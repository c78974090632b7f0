#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS each (default 5): `scripts/fuzz.sh [SECONDS]`.
# CI calls it from scripts/test.sh with a short time; run it by hand with a longer one (README,
# "Fuzzing"). Installs cargo-fuzz when missing, builds all targets once, seeds each target's
# corpus from fuzz/corpus/<target> and ../shared/corpora, and stops at the first crash (the input
# is left in fuzz/artifacts/<target>/; `cargo fuzz run <target> <file>` replays it).
#
# Environment: FUZZ_TARGETS="a b" runs only those; FUZZ_BUILD_FLAGS replaces the build flags
# (default `--dev --sanitizer none`: a quick build that finds panics, overflows and hangs, the
# failures a safe-Rust parser can have; `-O --sanitizer address` for a slower, deeper build).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-5}"
# cargo-fuzz passes nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov-module, ...); the
# project's toolchain is stable, and RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:---dev --sanitizer none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

shared=../shared/corpora
if [ ! -d "$shared" ]; then
  echo "error: the conformance corpora are missing: expected $shared beside this repository" >&2
  exit 1
fi

# Copies the files of the given globs (those under 64 KiB) into a corpus directory; an optional
# leading `--prefix BYTE` puts one byte in front (targets whose first byte picks a mode).
seed() {
  local dir=$1 prefix=""
  shift
  if [ "$1" = "--prefix" ]; then
    prefix=$2
    shift 2
  fi
  local f
  for f in "$@"; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 65536 ] || continue
    { printf "$prefix"; cat "$f"; } >"$dir/$(echo "$f" | sha1sum | cut -c1-16)"
  done
}

# One file per PromQL expression of Prometheus's engine tests.
promql_seeds() {
  local dir=$1 n=0
  sed -nE 's/^eval[a-z_]* instant at [^ ]+ //p; s/^eval[a-z_]* range from [^ ]+ to [^ ]+ step [^ ]+ //p' \
    "$shared"/promql/testdata/*.test | sort -u | while IFS= read -r expr; do
    n=$((n + 1))
    printf '%s' "$expr" >"$dir/expr-$n"
  done
}

seed_shared() {
  local target=$1 dir=$2
  shopt -s nullglob globstar
  case "$target" in
  exposition_text)
    seed "$dir" "$shared"/exposition/prometheus-common-expfmt/**/* "$shared"/exposition/prometheus-textparse/*.prom.txt ;;
  openmetrics)
    seed "$dir" "$shared"/exposition/openmetrics/*/metrics "$shared"/exposition/prometheus-textparse/*.om.txt ;;
  container_log_lines)
    seed "$dir" --prefix '\000' "$shared"/logs/kubernetes/**/*.log "$shared"/logs/multiline/**/*.log ;;
  rule_file)
    seed "$dir" "$shared"/alerts/**/*.yml "$shared"/alerts/**/*.yaml ;;
  promql)
    promql_seeds "$dir" ;;
  config_file)
    seed "$dir" deploy/tarsier.example.yaml ;;
  alertmanager_config)
    seed "$dir" deploy/notify.example.yaml deploy/kubernetes/base/config/notify.yaml ;;
  esac
  shopt -u nullglob globstar
}

started=$(date +%s)
cargo fuzz build "${build_flags[@]}"
built=$(date +%s)
echo "== fuzz: built every target in $((built - started)) s"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
for target in $targets; do
  # libFuzzer adds what it finds to the first corpus directory: keep that out of the repository.
  work=fuzz/target/corpus/$target
  mkdir -p "$work" "fuzz/corpus/$target"
  seed_shared "$target" "$work"
  echo "== fuzz: $target for ${seconds} s"
  log=fuzz/target/$target.log
  if ! cargo fuzz run "${build_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "error: fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^INFO: seed corpus' "$log" | tr '\n' ' ' || true
  echo
done
echo "== fuzz: every target ran ${seconds} s; $(($(date +%s) - started)) s in all"
