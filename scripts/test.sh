#!/usr/bin/env bash
# The project's test command (README, .ci/run): machine setup, then lint and every test.
# Parity tests read ../shared/fixtures (override with WAN_FIXTURES); with CI=true a
# missing fixture folder is a failure, not a skip.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export WAN_FIXTURES=${WAN_FIXTURES:-$root/../shared/fixtures}
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
echo "build+lint: $(( $(date +%s) - start ))s"
cargo test --workspace --locked -- --test-threads=2
echo "total: $(( $(date +%s) - start ))s"
