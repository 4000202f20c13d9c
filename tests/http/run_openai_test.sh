#!/usr/bin/env bash
# Runs a Python test of the OpenAI-compatible HTTP API with the real `openai` SDK from PyPI,
# installed into a venv this script creates and keeps (a rerun reuses it):
#   run_openai_test.sh VENV_DIR TEST.py [ARGS...]
# Needs python3 with venv (scripts/install-deps.sh installs python3-venv) and PyPI.
set -euo pipefail
venv="$1"
shift
openai_version="3.63.0"
mkdir -p "$(dirname "$venv")"
(
  flock 9  # tests run in parallel; one creates the venv
  if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" \
      2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$openai_version"
  fi
) 9>"$venv.lock"
exec "$venv/bin/python" "$@"
