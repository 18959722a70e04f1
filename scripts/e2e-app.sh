#!/usr/bin/env bash
# End-to-end test of the desktop app on Linux (called by .ci/run):
#   apt deps (WebKitGTK, Xvfb, WebKitWebDriver) → tauri-driver (pinned, cached) →
#   UI build (npm ci) → app build (debug) → tests/e2e/app.mjs under xvfb-run.
# Screenshots and e2e-results.json (preview latency, idle memory) go to test-artifacts/.
#
# Env: WAN_FIXTURES (default ../shared/fixtures), WAN_STUDIO_ENGINE (wan|fake; the
# engine the app runs: `wan` = the MLX pipeline on the tiny checkpoint),
# WAN_STUDIO_CACHE (tauri-driver install cache, default ~/.cache/wan-studio).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
stamp() { echo "e2e-app: $1 ($(( $(date +%s) - start ))s)"; }

# WebKitGTK 4.1 + GTK 3 to build and run, Xvfb for a display, the WebKit WebDriver.
# GStreamer's libav + bad plugins let WebKitGTK play the H.264 clips; CJK and emoji fonts
# render the default (Chinese) negative prompt and the UI's symbols.
bash scripts/setup.sh libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev \
  xvfb xauth webkit2gtk-driver gstreamer1.0-libav gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad fonts-wqy-microhei fonts-noto-color-emoji
stamp "apt ok"

td_version=2.1.0
cache=${WAN_STUDIO_CACHE:-$HOME/.cache/wan-studio}
td=$cache/tauri-driver-$td_version/bin/tauri-driver
if [[ ! -x $td ]]; then
  mkdir -p "$cache"
  # Outside the repo so its .cargo/config.toml (MLX glue) does not apply.
  (cd "$cache" && cargo install tauri-driver --version "$td_version" --locked \
    --root "$cache/tauri-driver-$td_version")
fi
stamp "tauri-driver $td_version ok"

# Rebuild the UI only when missing or older than its sources (test.sh has just built it).
if [[ ! -f ui/dist/index.html ]] || [[ -n $(find ui/src ui/index.html ui/package-lock.json -newer ui/dist/index.html | head -1) ]]; then
  (cd ui && { [[ -d node_modules ]] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build)
fi
stamp "ui built"
# The same build as scripts/test.sh (same feature set: no rebuild after it).
cargo build --workspace --all-targets --locked
stamp "app built"

export WAN_FIXTURES=${WAN_FIXTURES:-$root/../shared/fixtures}
ckpt=$(cd "$WAN_FIXTURES/checkpoints/ti2v_tiny" && pwd)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
art=$root/test-artifacts
rm -rf "$art" && mkdir -p "$art"

export WAN_STUDIO_DATA_DIR=$data
# Plan memory for a 16 GB machine whatever the runner has (the E2E checks the plan line).
export WAN_STUDIO_MEMORY=16GB
# The real MLX pipeline on the tiny checkpoint (`fake` is the weights-free stand-in).
export WAN_STUDIO_ENGINE=${WAN_STUDIO_ENGINE:-wan}
# Headless WebKitGTK in a container: no GPU, often root (the bubblewrap sandbox cannot start).
export WEBKIT_DISABLE_COMPOSITING_MODE=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1
[[ $(id -u) == 0 ]] && export WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS=1
export APP=$root/target/debug/wan-studio CKPT=$ckpt ARTIFACTS=$art TD=$td
export CONVERT_DST=$data/ti2v_tiny-mlx
# The image→video block: an I2V-A14B folder and an image to drop on the window.
export I2V_CKPT=$(cd "$WAN_FIXTURES/checkpoints/i2v_a14b_tiny" && pwd)
export I2V_IMAGE=$(cd "$WAN_FIXTURES/checkpoints" && pwd)/e2e_i2v_a14b_image.png

# Issue 13: a mock Hugging Face Hub serving the fixture checkpoints (throttled so the
# download's progress and cancel can be seen; every file response logged), and ffmpeg
# reachable by the app only through a folder the test controls (WAN_FFMPEG_SEARCH_PATH
# replaces PATH and the Homebrew folders), so the test can take ffmpeg away and back.
hub_out=$art/mock-hub.out
target/debug/examples/mock_hub "$WAN_FIXTURES/checkpoints" --bytes-per-sec 2000000 \
  --log "$art/mock-hub.log" >"$hub_out" 2>&1 &
hub_pid=$!
trap 'kill "$hub_pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q '^mock hub: ' "$hub_out" && break; sleep 0.1; done
HF_ENDPOINT=$(sed -n 's/^mock hub: //p' "$hub_out")
[[ -n $HF_ENDPOINT ]] || { echo "e2e-app: the mock hub did not start"; cat "$hub_out"; exit 1; }
ffmpeg_dir=$data/ffmpeg-bin
mkdir -p "$ffmpeg_dir"
real_ffmpeg=$(command -v ffmpeg)
ln -s "$real_ffmpeg" "$ffmpeg_dir/ffmpeg"
unset WAN_FFMPEG
export HF_ENDPOINT WAN_FFMPEG_SEARCH_PATH=$ffmpeg_dir FFMPEG_DIR=$ffmpeg_dir REAL_FFMPEG=$real_ffmpeg
export HUB_LOG=$art/mock-hub.log HUB_ROOT=$WAN_FIXTURES/checkpoints
echo "e2e-app: engine=$WAN_STUDIO_ENGINE ckpt=$ckpt data=$data"

xvfb-run -a -s "-screen 0 1400x1000x24" bash -c '
  "$TD" --port 4444 --native-driver /usr/bin/WebKitWebDriver >"$ARTIFACTS/tauri-driver.log" 2>&1 &
  tdpid=$!
  rc=0
  node tests/e2e/app.mjs || rc=$?
  kill "$tdpid" 2>/dev/null || true
  wait "$tdpid" 2>/dev/null || true
  exit $rc'
stamp "PASS"
