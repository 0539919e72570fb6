"""Run every path of the self-check, print one line per path, return the exit code (0: all ok, 1: not).

    python pipeline/render.py --self-check [--comfyui DIR]

Each line: ok or FAIL, the path, its largest difference from the float64 reference and the tolerance,
and the ComfyUI it ran in; then a summary with the total time.
"""
import contextlib
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .graph import GraphFailed, Graphs
from .paths import PATHS, Check

log = logging.getLogger("animatelcm.selfcheck")


def comfyui_version():
    """ComfyUI's version as it states it (comfyui_version.py, from 2025 on)."""
    try:
        import comfyui_version
        return f"ComfyUI {comfyui_version.__version__}"
    except ImportError:
        return "ComfyUI (no version file: older than 2025)"


def run_paths(paths=PATHS, out=None, version=""):
    """Run `paths`; returns [Check]. A path that raises is a failed Check naming the error."""
    import torch
    checks = []
    with tempfile.TemporaryDirectory(prefix="animatelcm-selfcheck-") as work, Graphs(work) as graphs, \
            torch.inference_mode(False), _full_float32():
        for path in paths:
            try:
                results = path(graphs)
            except Exception as error:  # noqa: BLE001  (any error is the path's failure, and said)
                detail = f"{type(error).__name__}: {error}" if not isinstance(error, GraphFailed) else str(error)
                frames = getattr(error, "traceback", None) or traceback.format_tb(error.__traceback__)
                log.debug("%s failed:\n%s", path.__name__, "".join(frames))
                results = [Check(path.__name__.replace("_", " "), float("nan"), 0.0, detail)]
                _unload_quietly()
            for check in results:
                if out is not None:
                    print(line(check, version), file=out, flush=True)
            checks.extend(results)
    return checks


@contextlib.contextmanager
def _full_float32():
    """TF32 off while the check runs: NVIDIA GPUs' TF32 products (cuDNN's convolutions use them by default) keep
    10 bits of mantissa, and the tolerances are float32's."""
    import torch
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _unload_quietly():
    import comfy.model_management
    comfy.model_management.unload_all_models()


def line(check, version=""):
    """`ok   <path>  max diff 3.0e-06 <= 1e-05  ComfyUI 0.3.75`, or FAIL and what differs (or what was raised)."""
    status = "ok  " if check.ok else "FAIL"
    if check.error:
        return f"{status} {check.name}: {check.error}  {version}".rstrip()
    compare = "<=" if check.ok else "> "
    return f"{status} {check.name}  max diff {check.max_diff:.1e} {compare} {check.tolerance:.0e}  {version}".rstrip()


def main(out=sys.stdout):
    """The self-check's command: the lines, a summary, 0 when every path agrees with its reference."""
    import comfy.model_management
    import folder_paths
    import torch
    started = time.perf_counter()
    version = comfyui_version()
    threads = torch.get_num_threads()
    print(f"AnimateLCM self-check in {version} at {Path(folder_paths.__file__).resolve().parent}, on "
          f"{comfy.model_management.get_torch_device()} ({threads} CPU thread{'s' if threads > 1 else ''})",
          file=out, flush=True)
    checks = run_paths(out=out, version=version)
    failed = [c for c in checks if not c.ok]
    seconds = time.perf_counter() - started
    if failed:
        print(f"FAIL {len(failed)} of {len(checks)} paths differ from the reference ({', '.join(c.name for c in failed)}) "
              f"in {version}, {seconds:.1f} s. Videos made in this ComfyUI may be wrong: please report this output "
              "(https://github.com/animatelcm-fast/animatelcm-fast/issues), and keep the ComfyUI version that passed.",
              file=out, flush=True)
        return 1
    print(f"ok   all {len(checks)} paths agree with the reference in {version}, {seconds:.1f} s", file=out, flush=True)
    return 0
