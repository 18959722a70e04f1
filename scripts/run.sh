#!/usr/bin/env bash
# The main job (README): machine setup, then one of the CLI binaries in release mode.
#   bash scripts/run.sh                      # train a small Wan DiT from scratch, sample clips (no weights needed)
#   bash scripts/run.sh generate --task ti2v-5B --ckpt_dir /path/to/Wan2.2-TI2V-5B --prompt "..."
#   bash scripts/run.sh convert|inspect_model|parity|bench|fit_preview ...
#   bash scripts/run.sh download Wan-AI/Wan2.2-TI2V-5B /path/to/Wan2.2-TI2V-5B
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh >&2
bin=train
case ${1:-} in
  train | generate | convert | inspect_model | parity | bench | fit_preview | vae_bench | download) bin=$1; shift ;;
esac
if [[ $bin == train && $# == 0 ]]; then
  set -- runs/shapes
fi
exec cargo run --release --locked -p wan-models --bin "$bin" -- "$@"
