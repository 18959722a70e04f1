# CMake toolchain file for mlx-sys's bundled mlx-c on x86_64 Linux only
# (cargo passes it through CMAKE_TOOLCHAIN_FILE_x86_64_unknown_linux_gnu, see
# .cargo/config.toml; the variable is target-specific, so macOS never sees it).
# It builds mlx-c against the prebuilt MLX of the PyPI `mlx-cpu` wheel
# (unpacked by scripts/setup.sh) instead of git-cloning and compiling MLX.
# Acts only when the project being configured is mlx-c.
if(EXISTS "${CMAKE_SOURCE_DIR}/mlx/c/mlx.h")
  if(DEFINED ENV{MLX_DIST_DIR})
    set(_mlx_dist "$ENV{MLX_DIST_DIR}")
  else()
    get_filename_component(_mlx_dist "${CMAKE_CURRENT_LIST_DIR}/../../.mlx-dist" ABSOLUTE)
  endif()
  if(NOT EXISTS "${_mlx_dist}/mlx/share/cmake/MLX/MLXConfig.cmake")
    message(FATAL_ERROR "MLX wheel not unpacked at ${_mlx_dist}; run scripts/setup.sh")
  endif()
  set(MLX_C_USE_SYSTEM_MLX ON CACHE BOOL "use prebuilt MLX (PyPI wheel)" FORCE)
  set(MLX_C_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
  set(MLX_DIR "${_mlx_dist}/mlx/share/cmake/MLX" CACHE PATH "" FORCE)
  # std::format fallback for GCC 12 + half types on x86_64 (see the header).
  add_compile_options("SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/include/mlxrs_linux_compat.h")
endif()
