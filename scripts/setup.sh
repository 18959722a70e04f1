#!/usr/bin/env bash
# One-time, idempotent machine setup for building and testing Wan Studio.
#  - macOS: nothing to install here (mlx-rs builds MLX with Metal through cargo;
#    needs Xcode command line tools and cmake). ffmpeg from Homebrew for mp4 output.
#  - x86_64 Debian/Ubuntu: apt packages (only the missing ones; needs root) and
#    the hash-pinned PyPI `mlx-cpu` wheel unpacked into .mlx-dist/ (no MLX build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ $(uname -s) != Linux ]]; then
  echo "setup: nothing to do on $(uname -s)"
  exit 0
fi

dist=${MLX_DIST_DIR:-$root/.mlx-dist}
req=$root/scripts/mlx-linux/mlx-cpu-requirements.txt

# cmake/g++/make: mlx-sys builds mlx-c; libclang1-14 + libclang-common-14-dev:
# bindgen; libopenblas0-pthread: fast BLAS bound before the wheel's reference
# BLAS; ffmpeg: mp4 writing/reading (generate, tests use ffprobe).
pkgs=(cmake g++ make pkg-config libclang1-14 libclang-common-14-dev libopenblas0-pthread ffmpeg)
pkgs+=(libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev) # the Tauri app (src-tauri) builds against WebKitGTK 4.1
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  sudo_=""
  [[ $(id -u) == 0 ]] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=$dist/.installed-$(sha256sum "$req" | cut -c1-16)
if [[ ! -e $stamp ]]; then
  echo "setup: unpacking $(grep -o '^mlx-cpu==[^ ]*' "$req") into $dist"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --require-hashes -r "$req" -d "$tmp"
  rm -rf "$dist"
  mkdir -p "$dist"
  python3 -m zipfile -e "$tmp"/mlx_cpu-*.whl "$dist"
  touch "$stamp"
fi
test -f "$dist/mlx/lib/libmlx.so"
echo "setup: ok ($dist)"
