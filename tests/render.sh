#!/usr/bin/env bash
# The "main job" command: render a workflow (UI format, e.g. workflows/animatelcm_t2v.json) in a
# real ComfyUI, with random-weight stand-ins for the model files it names that are missing.
# Makes the environment on first use, like tests/run.sh. Arguments go to tests/render_workflow.py
# (`--frames N`, `--size PX`, `--full`, `--out DIR`); results are copied to ./output by default.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/tests/env.sh"
exec "$ALCM_PYTHON" "$repo/tests/render_workflow.py" "$@"
