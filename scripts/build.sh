#!/usr/bin/env bash
# Configures and builds moeserve into build/ (binaries in build/bin/). Installs missing Debian
# packages first. Extra arguments are passed to CMake's configure step, e.g.
#   scripts/build.sh -DMOESERVE_CUDA=OFF -DMOESERVE_GRPC=OFF
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo), JOBS (default nproc),
#              MOESERVE_SKIP_DEPS=1 to skip the package check.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"

if [[ "${MOESERVE_SKIP_DEPS:-0}" != "1" ]]; then
  "$root/scripts/install-deps.sh"
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@"
elif (($# > 0)); then
  cmake -S "$root" -B "$build_dir" "$@"
fi
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}"
