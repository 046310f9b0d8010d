#!/usr/bin/env bash
# The deploy checks alone: Prometheus rules and their unit tests, dashboards, Kubernetes
# manifests, the systemd unit, the Docker files and the example configurations. They are
# tests (tests/deploy, and tests/prometheus_live.rs for the dashboards' queries against a
# live Prometheus) and run in scripts/test.sh, the test command; this runs just them.
#   usage: scripts/check-deploy.sh [--live]   (--live adds tests/prometheus_live.rs, ~1-2 min)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test.sh --deps-only
targets=(--test deploy)
[ "${1:-}" = "--live" ] && targets+=(--test prometheus_live)
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --locked --no-fail-fast --status-level skip "${targets[@]}"
else
  exec cargo test --locked --no-fail-fast "${targets[@]}"
fi
