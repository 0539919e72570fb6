"""Every test runs against a real ComfyUI (tests/comfy_host.py); a host that cannot start stops the run."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

import comfy_host  # noqa: E402
import stand_ins  # noqa: E402
from stand_ins import CACHE_DIR, SD15_FILE  # noqa: E402,F401  (files too slow to make every run are cached there)


def pytest_configure(config):
    try:
        host = comfy_host.start()
    except Exception as error:  # noqa: BLE001  (any failure to start is fatal, and said loudly)
        pytest.exit(f"COMFYUI HOST DID NOT START - no test ran: {error}", returncode=3)
    config._alcm_host = host


def pytest_report_header(config):
    host = getattr(config, "_alcm_host", None)
    if host is not None:
        return [f"ComfyUI host: {host.description} at {host.comfyui_path}",
                f"pack loaded as custom node '{comfy_host.PACK_NAME}' with "
                f"{len(host.pack.NODE_CLASS_MAPPINGS)} nodes"]
    return []


def pytest_terminal_summary(terminalreporter, config):
    host = getattr(config, "_alcm_host", None)
    if host is not None:
        terminalreporter.write_line(f"ran in ComfyUI host: {host.description}")


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


@pytest.fixture(scope="session")
def sd15_checkpoint(host):
    """Name of a full-size random SD1.5 checkpoint in the host's checkpoints folder."""
    return stand_ins.sd15_checkpoint(host, SD15_FILE)
