#!/usr/bin/env bash
# Every object of the CUDA kernel library carries device code for each architecture the build
# targets (CMAKE_CUDA_ARCHITECTURES, default 90a): `cuobjdump --list-elf` must list an ELF image
# for sm_<arch> per .cu object. Skips (77) when no cuobjdump can be found.
# Usage: check_cuda_arch.sh LIBRARY ARCH [ARCH...]
set -uo pipefail
lib="$1"; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cuobjdump="$("$here/tools/find-cuobjdump.sh")" || { echo "SKIP: no cuobjdump (scripts/install-deps.sh installs it)"; exit 77; }
listing="$("$cuobjdump" --list-elf "$lib" 2>&1)" || { echo "FAIL: cuobjdump --list-elf $lib: $listing"; exit 1; }
status=0
for arch in "$@"; do
  arch="${arch%-real}"; arch="${arch%-virtual}"
  # Members listed by cuobjdump, and those of them holding an sm_<arch> ELF image.
  missing=$(awk -v want="sm_${arch}.cubin" '
    /^member / { if (m != "" && !ok) print m; m = $2; ok = 0; next }
    index($0, want) { ok = 1 }
    END { if (m != "" && !ok) print m }' <<<"$listing")
  members=$(grep -c '^member ' <<<"$listing")
  objects=$(ar t "$lib" | grep -c '\.o$')
  echo "sm_${arch}: ${members} of ${objects} objects listed, missing in: ${missing:-none}"
  if [[ -n "$missing" || "$members" -ne "$objects" ]]; then status=1; fi
done
if (( status == 0 )); then echo "PASS"; else echo "FAIL"; fi
exit $status
