#!/usr/bin/env bash
# The "main job" command: render a workflow (UI format, e.g. workflows/animatelcm_t2v.json) in a
# real ComfyUI, with random-weight stand-ins for the model files it names that are missing.
# Makes the environment on first use, like tests/run.sh (the 2024-03 registry host's; ALCM_HOST=0.3.75
# for the newer one, ALCM_VENV for one of your own). Arguments go to tests/render_workflow.py
# (`--frames N`, `--size PX`, `--full`, `--out DIR`); results are copied to ./output by default.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/tests/env.sh"
alcm_use_host "${ALCM_HOST:-2024-03}"
exec "$ALCM_PYTHON" "$repo/tests/render_workflow.py" "$@"
