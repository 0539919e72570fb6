"""Packaging: what the pack imports is what it declares, and a missing optional library disables only
the nodes that need it (the rest of the pack loads, and the log says what to install)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
# Modules ComfyUI itself provides to custom nodes.
COMFYUI_MODULES = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes", "node_helpers",
                   "latent_preview", "execution", "server", "utils", "app"}
PIP_NAMES = {"cv2": "opencv-python", "PIL": "Pillow", "yaml": "pyyaml"}


def runtime_imports():
    """Top-level third-party modules imported at module level by the pack's own code (not tests)."""
    found = {}
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("tests", ".ci") or relative.parts[0].startswith("."):
            continue
        for node in ast.parse(path.read_text()).body:  # module level only: a function's import is optional
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in COMFYUI_MODULES:
                    found.setdefault(PIP_NAMES.get(top, top), str(relative))
    return found


def requirement_names(lines):
    lines = [line.split(" #")[0].strip() for line in lines]  # pip allows a comment after " #"
    return {line.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
            for line in lines if line and not line.startswith("#")}


def test_requirements_declare_every_runtime_import():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    # requirements.txt (what ComfyUI-Manager and the registry install) is pyproject's list less torch
    assert requirement_names(requirements) == requirement_names(declared) - {"torch"}
    missing = {pip: where for pip, where in runtime_imports().items() if pip.lower() not in requirement_names(declared)}
    assert not missing, f"imported at runtime but not declared in pyproject.toml: {missing}"
    assert {"av", "opencv-python", "pillow", "psutil"} <= requirement_names(requirements)



def test_the_wheel_lists_every_package_of_the_pack():
    """`pip install .` (the renderer's console script) ships only the packages pyproject names: a new
    engine folder left out would import in custom_nodes and fail in the installed command."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"animatelcm_fast." + path.parent.name for path in REPO.glob("*/__init__.py")
               if path.parent.name not in ("tests",)}
    assert folders - listed == set(), f"package folders missing from pyproject.toml: {sorted(folders - listed)}"
    assert "animatelcm_fast" in listed and listed - {"animatelcm_fast"} <= folders

# Starts a host whose ComfyUI has already imported what it needs, then hides one library from the pack.
HIDE_AND_START = """
import json, sys
sys.path.insert(0, {tests!r})
import comfy_host
path, _ = comfy_host.locate_comfyui()
sys.path.insert(0, str(path))
import comfy.cli_args
comfy.cli_args.args.cpu = True
import comfy.model_management
if (path / "utils").is_dir():
    import utils
import nodes  # ComfyUI 0.3.x imports PyAV itself: keep its own copy, hide it from the pack only
sys.modules[{module!r}] = None
host = comfy_host.start()
print("ALCM_NODES", json.dumps(sorted(host.pack.NODE_CLASS_MAPPINGS)))
print("REGISTERED", json.dumps(sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("ALCM_"))))
"""


VIDEO = ({"ALCM_SaveVideo", "ALCM_LoadVideo"}, "Save Video and Load Video (AnimateLCM)")
I2V = ({"ALCM_ImageToVideo", "ALCM_MatchColors"}, "AnimateLCM Image to Video and Match Colors to Image")
QUALITY = ({"ALCM_VideoQuality"}, "Video Quality (AnimateLCM)")  # its optical flow is OpenCV's
CANNY = ({"ALCM_CannyEdges"}, "Canny Edges (AnimateLCM)")  # OpenCV's Canny


@pytest.mark.parametrize("module, pip_name, disabled", [("cv2", "opencv-python", [VIDEO, I2V, QUALITY, CANNY]),
                                                        ("av", "av", [VIDEO])])
def test_a_missing_library_disables_only_the_nodes_that_need_it(pack, module, pip_name, disabled):
    run = subprocess.run([sys.executable, "-c", HIDE_AND_START.format(tests=str(REPO / "tests"), module=module)],
                         capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.startswith(("ALCM_NODES", "REGISTERED")))
    loaded, registered = json.loads(lines["ALCM_NODES"]), json.loads(lines["REGISTERED"])
    left_out = set().union(*(ids for ids, _ in disabled))
    assert set(loaded) == set(registered) == set(pack.NODE_CLASS_MAPPINGS) - left_out
    assert len(loaded) >= 5  # the motion, sampler and LoRA nodes are all there
    for _, what in disabled:
        assert f"{what} are disabled because the Python package '{pip_name}' is missing" in run.stderr + run.stdout
    assert f"python -m pip install {pip_name}" in run.stderr + run.stdout
