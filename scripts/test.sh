#!/usr/bin/env bash
# The project's test command (README, .ci/run): machine setup, then lint and every test:
# the UI's unit tests, the Rust tests (parity against ../shared/fixtures included), and the
# end-to-end test of the real desktop app under Xvfb (scripts/e2e-app.sh).
# Parity tests read ../shared/fixtures (override with WAN_FIXTURES); a missing fixture
# folder or tool fails the tests (WAN_ALLOW_SKIP=1 skips instead: local runs only, never
# here). WAN_SKIP_E2E=1 skips the app E2E (for quick local runs; CI runs it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
stamp() { echo "test: $1 ($(( $(date +%s) - start ))s)"; }
bash scripts/setup.sh
export WAN_FIXTURES=${WAN_FIXTURES:-$root/../shared/fixtures}

# The UI first: the app binary embeds ui/dist at compile time.
(cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test)
stamp "ui built and tested"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
stamp "build+lint"
cargo test --workspace --locked -- --test-threads=2
stamp "rust tests"

if [[ ${WAN_SKIP_E2E:-0} != 1 ]]; then
  bash scripts/e2e-app.sh
  stamp "app e2e"
fi
stamp "total"
