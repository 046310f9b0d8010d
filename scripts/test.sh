#!/usr/bin/env bash
# The project's one test command (README "Tests"; CI runs exactly this).
# Installs what the tests need on a fresh Debian machine, then runs format, lint, and every
# test in one runner: unit and integration tests (real binary, real sockets, real Prometheus)
# and the deploy checks (tests/deploy: promtool, kubernetes-validate, systemd-analyze, ...).
# A tool that cannot be installed fails this command; no test skips because a tool is missing.
#   usage: scripts/test.sh [--deps-only]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: promtool and prometheus (package prometheus), systemd-analyze (systemd),
# the interpreters of the spool snippets in examples/drop-order (java, php), the headless
# browser of tests/browser.rs (chromium, driven through chromium-driver), and jq (the
# runbooks' log examples, run by tests/runbook_logs.rs).
need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v java >/dev/null 2>&1 || need_apt+=(default-jre-headless)
command -v php >/dev/null 2>&1 || need_apt+=(php-cli)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
if [ ${#need_apt[@]} -gt 0 ]; then
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  echo "==> installing ${need_apt[*]} (Debian packages)"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python packages, pinned: the deploy checks' tools and the dashboards' generator.
requirements=(-r tests/requirements.txt)
[ -f dashboards/requirements.txt ] && requirements+=(-r dashboards/requirements.txt)
echo "==> python3 -m pip install ${requirements[*]}"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${requirements[@]}"

if [ "${1:-}" = "--deps-only" ]; then
  exit 0
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  # --status-level skip: a skipped test is named in the output, not only counted.
  cargo nextest run --locked --no-fail-fast --status-level skip
else
  cargo test --locked --no-fail-fast
fi
