#!/usr/bin/env bash
# Cargo `build.rustc-wrapper` (see .cargo/config.toml).
#
# On macOS, and on anything that is not x86_64 Linux, this is a pure
# pass-through: mlx-sys builds MLX with Metal/Accelerate there as upstream
# intends.
#
# On x86_64 Linux we link mlx-rs 0.33 / mlx-sys 0.7 against the prebuilt
# libmlx.so of the PyPI `mlx-cpu` wheel (unpacked into .mlx-dist/ by
# scripts/setup.sh) instead of compiling MLX:
#  1. crate `mlx_sys`: its build script emits macOS-only link directives, which
#     rustc itself rejects on Linux (`framework`), so they are rewritten:
#       static=mlx -> dylib=mlx (found through LIBRARY_PATH, see config)
#       static=gguflib/jaccl, objc, framework=* -> dropped (gguf is in libmlx.so)
#       c++ -> stdc++ (the wheel is built against libstdc++)
#     plus libopenblas.so.0 (fast BLAS, bound before the wheel's reference
#     BLAS) and a small static shim (mach_time_shim.c).
#  2. final links (bin, test, cdylib, dylib): an rpath to the wheel's lib dir.
set -euo pipefail

if [[ $(uname -s) != Linux || $(uname -m) != x86_64 ]]; then
  exec "$@"
fi

args=("$@") # args[0] is rustc (or clippy-driver), the rest its arguments
crate="" final_link=0
for ((i = 1; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --crate-name) crate=${args[i + 1]:-} ;;
    --crate-type) case ${args[i + 1]:-} in bin | cdylib | dylib) final_link=1 ;; esac ;;
    --test) final_link=1 ;;
  esac
done
[[ $crate == build_script_* ]] && final_link=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dist=${MLX_DIST_DIR:-$(cd "$here/../.." && pwd)/.mlx-dist}

if [[ $crate != mlx_sys ]]; then
  if ((final_link)); then
    exec "${args[@]}" -C "link-arg=-Wl,-rpath,$dist/mlx/lib"
  fi
  exec "${args[@]}"
fi

use_openblas=0
if [[ ${MLX_RS_NO_OPENBLAS:-0} != 1 && -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 ]]; then
  use_openblas=1
fi

# The shim archive only has to live until rustc has bundled it into the rlib.
shim_dir=$(mktemp -d)
trap 'rm -rf "$shim_dir"' EXIT
shim_defs=()
((use_openblas)) && shim_defs+=(-DMLXRS_LINK_OPENBLAS)
"${CC:-cc}" -O2 -fPIC "${shim_defs[@]}" -c "$here/mach_time_shim.c" -o "$shim_dir/shim.o"
ar rcs "$shim_dir/libmlxrs_linux_shim.a" "$shim_dir/shim.o"

out=("${args[0]}")
for ((i = 1; i < ${#args[@]}; i++)); do
  a=${args[i]}
  if [[ $a == -l && $((i + 1)) -lt ${#args[@]} ]]; then
    i=$((i + 1))
    case ${args[i]} in
      static=mlx)
        ((use_openblas)) && out+=(-l "dylib:+verbatim=libopenblas.so.0")
        out+=(-l dylib=mlx) ;;
      static=gguflib | static=jaccl | objc | dylib=objc | framework=*) ;;
      c++ | dylib=c++) out+=(-l dylib=stdc++) ;;
      *) out+=(-l "${args[i]}") ;;
    esac
  else
    out+=("$a")
  fi
done
out+=(-L "native=$shim_dir" -l static:+whole-archive=mlxrs_linux_shim)
"${out[@]}"
