#!/usr/bin/env bash
# Prints the path of a cuobjdump that can read this toolkit's binaries, or nothing (exit 1).
# Looks on PATH, in the CUDA toolkit, then in the PyPI wheel nvidia-cuda-cuobjdump (the Debian
# machines here ship the toolkit without it; scripts/install-deps.sh installs the wheel).
set -uo pipefail
for c in "$(command -v cuobjdump 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump"; do
  [[ -n "$c" && -x "$c" ]] && { echo "$c"; exit 0; }
done
command -v python3 >/dev/null 2>&1 || exit 1
python3 - <<'PY' || exit 1
import os, sys
try:
    import nvidia
except ImportError:
    sys.exit(1)
for root in nvidia.__path__:
    for sub in sorted(os.listdir(root)):
        path = os.path.join(root, sub, "bin", "cuobjdump")
        if os.access(path, os.X_OK):
            print(path)
            sys.exit(0)
sys.exit(1)
PY
