#!/usr/bin/env bash
# Build the self-contained Mac app: target/release/bundle/macos/Wan Studio.app and
# target/release/bundle/dmg/Wan Studio_<version>_aarch64.dmg, for Macs that never built it.
#
#   bash scripts/macos/bundle.sh [--ffmpeg /path/to/static/ffmpeg]
#
# The bundle carries
#  - the Metal kernels: Contents/Resources/mlx.metallib (built by mlx-sys into
#    target/mlx-metal/, see .cargo/config.toml; the app names it at start);
#  - ffmpeg: Contents/MacOS/ffmpeg, a static build (no Homebrew libraries: checked with
#    otool). Given with --ffmpeg or $WAN_BUNDLE_FFMPEG, else downloaded from the URL
#    ffmpeg-sidecar uses for Apple silicon ($WAN_BUNDLE_FFMPEG_URL overrides it).
# and is then checked the way a fresh Mac would run it: `--self-check` with the build's
# kernel folder moved away and a bare PATH (kernels from the bundle, a matmul on the GPU,
# the bundled ffmpeg). Needs: scripts/setup.sh passing, `cargo install tauri-cli --locked`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
[[ $(uname -s) == Darwin ]] || { echo "bundle: macOS only" >&2; exit 1; }
ffmpeg_src=${WAN_BUNDLE_FFMPEG:-}
while (($#)); do
  case $1 in
    --ffmpeg) ffmpeg_src=$2; shift 2 ;;
    *) echo "bundle: unknown option $1" >&2; exit 1 ;;
  esac
done
bash scripts/setup.sh
cargo tauri --version >/dev/null 2>&1 || {
  echo "bundle: the Tauri CLI is missing: cargo install tauri-cli --version '^2' --locked" >&2
  exit 1
}
triple=$(rustc -vV | sed -n 's/^host: //p')

# 1. ffmpeg sidecar (Tauri wants the target triple in the file name).
mkdir -p target/sidecar
sidecar=target/sidecar/ffmpeg-$triple
if [[ -z $ffmpeg_src ]]; then
  url=${WAN_BUNDLE_FFMPEG_URL:-https://www.osxexperts.net/ffmpeg9arm.zip}
  echo "bundle: downloading a static ffmpeg from $url"
  rm -rf target/sidecar/unpacked && mkdir -p target/sidecar/unpacked
  curl -fL --retry 3 -o target/sidecar/ffmpeg.zip "$url"
  unzip -q -o target/sidecar/ffmpeg.zip -d target/sidecar/unpacked
  ffmpeg_src=$(find target/sidecar/unpacked -type f -name ffmpeg | head -1)
  [[ -n $ffmpeg_src ]] || { echo "bundle: no ffmpeg in $url" >&2; exit 1; }
fi
cp "$ffmpeg_src" "$sidecar"
chmod 755 "$sidecar"
xattr -c "$sidecar" 2>/dev/null || true
# A Mac without Homebrew must be able to run it: only system libraries may be linked.
foreign=$(otool -L "$sidecar" | tail -n +2 | awk '{print $1}' | grep -v -E '^(/usr/lib/|/System/Library/)' || true)
if [[ -n $foreign ]]; then
  echo "bundle: $ffmpeg_src links libraries a fresh Mac does not have:" >&2
  echo "$foreign" >&2
  echo "bundle: use a static build (--ffmpeg PATH)" >&2
  exit 1
fi
"$sidecar" -hide_banner -version | head -1
"$sidecar" -hide_banner -encoders 2>/dev/null | grep -q libx264 ||
  { echo "bundle: $ffmpeg_src has no libx264 encoder (the clips are H.264)" >&2; exit 1; }

# 2. UI dependencies (the CLI's beforeBuildCommand builds ui/dist).
npm --prefix ui ci --no-audit --no-fund --loglevel=error

# 3. The CLI's config in src-tauri/ (see tauri-bundle-config.mjs), then the bundle.
node scripts/macos/tauri-bundle-config.mjs src-tauri/tauri.conf.json
trap 'rm -f "$root/src-tauri/tauri.conf.json"' EXIT
(cd src-tauri && cargo tauri build --bundles app,dmg)

# 4. What a fresh Mac gets.
app="target/release/bundle/macos/Wan Studio.app"
exe="$app/Contents/MacOS/$(/usr/libexec/PlistBuddy -c 'Print :CFBundleExecutable' "$app/Contents/Info.plist")"
test -s "$app/Contents/Resources/mlx.metallib" || { echo "bundle: no Contents/Resources/mlx.metallib" >&2; exit 1; }
test -x "$app/Contents/MacOS/ffmpeg" || { echo "bundle: no Contents/MacOS/ffmpeg" >&2; exit 1; }
codesign --verify --deep --strict "$app"
# Self-check without the build machine's kernels and without Homebrew on PATH.
mv target/mlx-metal target/mlx-metal.away
trap 'mv "$root/target/mlx-metal.away" "$root/target/mlx-metal" 2>/dev/null || true; rm -f "$root/src-tauri/tauri.conf.json"' EXIT
mkdir -p test-artifacts
env -i HOME="$HOME" PATH=/usr/bin:/bin "$exe" --self-check | tee test-artifacts/self-check.json
grep -q '"ok": true' test-artifacts/self-check.json
grep -q '"source": "sidecar"' test-artifacts/self-check.json
ls -l target/release/bundle/dmg/*.dmg
echo "bundle: ok"
