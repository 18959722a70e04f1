#!/usr/bin/env bash
# One-time, idempotent machine setup for building and testing Wan Studio.
#  - macOS (Apple silicon, 14+): installs nothing; checks what the build needs and says
#    how to get each missing piece: full Xcode (mlx-sys compiles MLX's Metal kernels
#    with `metal`, which the Command Line Tools lack), cmake, Rust, Node (the UI), and
#    ffmpeg + ffprobe (mp4 output, tests) from Homebrew. Exits 1 listing every problem.
#  - x86_64 Debian/Ubuntu: apt packages (only the missing ones; needs root) and
#    the hash-pinned PyPI `mlx-cpu` wheel unpacked into .mlx-dist/ (no MLX build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ $(uname -s) == Darwin ]]; then
  problems=()
  have() { command -v "$1" >/dev/null 2>&1; }
  # Homebrew's folders, which a login shell has but a GUI-started one may not.
  for d in /opt/homebrew/bin /usr/local/bin; do
    [[ -d $d && :$PATH: != *:$d:* ]] && PATH=$PATH:$d
  done
  [[ $(uname -m) == arm64 ]] ||
    problems+=("this Mac is $(uname -m): MLX needs Apple silicon (arm64) for Metal")
  os=$(sw_vers -productVersion)
  ((${os%%.*} >= 14)) || problems+=("macOS $os: MLX needs macOS 14 or newer")
  if ! xcrun -sdk macosx metal --version >/dev/null 2>&1; then
    if [[ $(xcode-select -p 2>/dev/null) == *CommandLineTools* ]]; then
      problems+=("the Metal compiler is missing: the Command Line Tools have no \`metal\`. Install Xcode from the App Store, open it once, then: sudo xcode-select -s /Applications/Xcode.app/Contents/Developer")
    else
      problems+=("the Metal compiler is missing (\`xcrun -sdk macosx metal\` fails). Install Xcode from the App Store and select it (sudo xcode-select -s /Applications/Xcode.app/Contents/Developer); on Xcode 26+ also: xcodebuild -downloadComponent MetalToolchain")
    fi
  fi
  have cmake || problems+=("cmake is missing: brew install cmake")
  if have rustc; then
    rv=$(rustc -V | awk '{print $2}')
    [[ $(printf '%s\n1.90.0\n' "$rv" | sort -V | head -1) == 1.90.0 ]] ||
      problems+=("Rust $rv is too old (1.90+): rustup update")
  else
    problems+=("Rust is missing: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh")
  fi
  if have node; then
    nv=$(node -v | tr -d v)
    ((${nv%%.*} >= 20)) || problems+=("Node $nv is too old for the UI (20+): brew install node")
  else
    problems+=("Node is missing (the UI is built with npm): brew install node")
  fi
  for t in ffmpeg ffprobe; do
    have $t || problems+=("$t is missing (mp4 output, tests): brew install ffmpeg")
  done
  if ((${#problems[@]})); then
    echo "setup: this Mac cannot build Wan Studio yet:" >&2
    for p in "${problems[@]}"; do echo "  - $p" >&2; done
    exit 1
  fi
  echo "setup: ok (macOS $os $(uname -m), $(xcrun -sdk macosx metal --version 2>&1 | head -1), $(cmake --version | head -1), rustc $rv, node $nv, $(ffmpeg -version | head -1 | cut -d' ' -f1-3))"
  exit 0
fi
if [[ $(uname -s) != Linux ]]; then
  echo "setup: $(uname -s) is not supported (macOS on Apple silicon, or x86_64 Debian/Ubuntu)" >&2
  exit 1
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
