#!/usr/bin/env bash
# Cargo `build.rustdoc` (see .cargo/config.toml). Doctest binaries are linked by
# rustdoc, which the rustc wrapper never sees; on x86_64 Linux this adds the
# same rpath to the wheel's libmlx.so. Elsewhere it is a pass-through.
set -euo pipefail
if [[ $(uname -s) == Linux && $(uname -m) == x86_64 ]]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  dist=${MLX_DIST_DIR:-$(cd "$here/../.." && pwd)/.mlx-dist}
  for a in "$@"; do
    if [[ $a == --test ]]; then
      exec rustdoc "$@" -C "link-arg=-Wl,-rpath,$dist/mlx/lib"
    fi
  done
fi
exec rustdoc "$@"
