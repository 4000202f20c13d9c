#!/usr/bin/env bash
# Gathers what a runtime image needs from a build: the binaries into OUT/bin and the shared libraries
# they load that a bare Ubuntu (or CUDA runtime) image lacks into OUT/lib. Used by the Dockerfile's
# build stages; CI runs it on its own build in tests/deploy, so a break shows there first.
#   deploy/docker/collect-runtime.sh BIN_DIR OUT_DIR
# Never copied: glibc and the GCC runtime (in every base image), the CUDA driver (libcuda, mounted
# from the host by the NVIDIA container toolkit) and the CUDA toolkit libraries (in the
# nvidia/cuda runtime image, matching the devel image the build used).
set -euo pipefail
if (($# != 2)); then
  echo "usage: $0 BIN_DIR OUT_DIR" >&2
  exit 2
fi
bin_dir=$1
out=$2
binaries=(moeserve moeserve-cli moeserve-bench)
required=(moeserve moeserve-cli)

mkdir -p "$out/bin" "$out/lib"
for b in "${binaries[@]}"; do
  if [[ -x "$bin_dir/$b" ]]; then
    install -m 0755 "$bin_dir/$b" "$out/bin/$b"
  fi
done
for b in "${required[@]}"; do
  if [[ ! -x "$out/bin/$b" ]]; then
    echo "collect-runtime: $bin_dir/$b is missing (built without gRPC?)" >&2
    exit 1
  fi
done

skip='^(linux-vdso|ld-linux[^/]*|libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libgcc_s|libstdc\+\+|libcuda|libnvidia-[a-z-]*|libcudart|libcublas|libcublasLt|libcufft|libcurand|libcusparse|libcusolver|libnvrtc|libnvJitLink|libnccl)\.so'
if ldd "$out"/bin/* | grep -F "not found" >&2; then
  echo "collect-runtime: unresolved libraries (above)" >&2
  exit 1
fi
ldd "$out"/bin/* | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  while read -r lib; do
    name=$(basename "$lib")
    if [[ $name =~ $skip ]]; then continue; fi
    cp -L "$lib" "$out/lib/$name"
    echo "$name"
  done > "$out/lib/MANIFEST"
echo "collect-runtime: $(ls "$out/bin" | wc -l) binaries, $(wc -l < "$out/lib/MANIFEST") libraries in $out" >&2
