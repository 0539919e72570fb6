"""Running API prompts with the executor of the ComfyUI in this process (render.start_comfyui starts it).

One runner keeps one PromptExecutor, so what a job loaded (checkpoint, motion module, LoRAs) stays
loaded for the next job that asks for the same files, as it does between queued prompts in the GUI.
"""
import asyncio
import inspect
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .workflow_api import LiveCatalog


class JobFailed(RuntimeError):
    """ComfyUI refused the prompt or a node raised; the message is ComfyUI's, naming the node."""


@dataclass
class Rendered:
    outputs: list  # paths of the files the output nodes wrote
    graph_seconds: float  # the executor's own time


class _Messages:
    """What ComfyUI's executor needs of its PromptServer: somewhere to send status messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.on_event = None

    def send_sync(self, event, data, sid=None):
        if self.on_event is not None:
            self.on_event(event, data)

    def queue_updated(self):
        pass


def validation_message(error, node_errors):
    """ComfyUI's validation result as lines a user can act on: node id, type, input, what is wrong."""
    lines = [str(error.get("message", error)) if isinstance(error, dict) else str(error)]
    for node_id, entry in (node_errors or {}).items():
        for item in entry.get("errors", []):
            detail = item.get("details") or ""
            lines.append(f"node {node_id} ({entry.get('class_type', '?')}): {item.get('message', '')}"
                         + (f": {detail}" if detail else ""))
    return "\n  ".join(lines)


SELF_CHECK_HINT = ("the error was raised inside ComfyUI's own code (comfy/): if ComfyUI was updated since the pack "
                   "last worked, `bash pipeline/render.sh --self-check` (or `python pipeline/render.py --self-check` "
                   "with that ComfyUI's Python) tells in a minute whether the pack still makes the same video in it")


def raised_in_comfyui(traceback_lines):
    """Whether a formatted traceback (ComfyUI's execution_error message holds one) runs through comfy/*."""
    return any(re.search(r'File "[^"]*[\\/]comfy[\\/]', frame) for frame in traceback_lines or [])


def failure_message(status_messages):
    for event, data in status_messages:
        if event == "execution_error":
            message = (f"node {data.get('node_id')} ({data.get('node_type')}) raised "
                       f"{data.get('exception_type')}: {str(data.get('exception_message', '')).strip()}")
            return message + (f"\n  ({SELF_CHECK_HINT})" if raised_in_comfyui(data.get("traceback")) else "")
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return "the prompt failed without an error message"


def _output_files(ui_outputs):
    """Files the output nodes report in ComfyUI's output folder; a node that reports a file there and a
    preview of it in the temp folder gives the first only. Temp-only nodes (Preview Image) give none."""
    import folder_paths
    files = []
    for ui in ui_outputs.values():
        for key in ("images", "gifs", "videos", "audio"):
            for entry in (ui or {}).get(key, []) or []:
                if isinstance(entry, dict) and entry.get("type", "output") == "output" and "filename" in entry:
                    files.append(Path(folder_paths.get_output_directory()) / entry.get("subfolder", "")
                                 / entry["filename"])
    return files


class InProcessRunner:
    kind = "in-process"

    def __init__(self):
        import execution
        options = {}
        if "cache_args" in inspect.signature(execution.PromptExecutor.__init__).parameters:
            options["cache_args"] = {"lru": 0, "ram": 0}  # what main.py passes by default (ComfyUI >= 0.3.6x)
        self.messages = _Messages()
        self.executor = execution.PromptExecutor(self.messages, **options)
        self.catalog = LiveCatalog()

    def render(self, prompt, stand_ins=False, size=None, on_progress=None, on_node=None):
        """Run a job's prompt: with random-weight stand-ins for missing files when asked, else a clear
        error naming each missing model file, the folder it belongs in and the way to try without it."""
        from ..stand_ins import files as stand_in_files
        if stand_ins:
            stand_in_files.provide_model_files(prompt)
            stand_in_files.provide_input_videos(prompt, size)
            stand_in_files.provide_input_images(prompt, size)
        else:
            missing = stand_in_files.missing_model_files(prompt)
            if missing:
                import folder_paths
                raise JobFailed("model files are missing:\n  " + "\n  ".join(
                    f"node {node_id} {name}: '{file}' is not in ComfyUI's {folder} folder "
                    f"({', '.join(folder_paths.get_folder_paths(folder))})" for node_id, name, folder, file in missing)
                    + "\nput them there, or add --stand-ins to try the workflow with random weights")
        return self.run(prompt, on_progress, on_node)

    def run(self, prompt, on_progress=None, on_node=None):
        """Validate and execute an API prompt; returns Rendered, raises JobFailed."""
        import comfy.model_management
        import comfy.utils
        import execution
        prompt_id = str(uuid.uuid4())
        valid = execution.validate_prompt(prompt_id, prompt, None) if _validate_takes_id() else \
            execution.validate_prompt(prompt)
        if inspect.isawaitable(valid):
            valid = asyncio.run(valid)
        if not valid[0]:
            raise JobFailed("ComfyUI refused the prompt: " + validation_message(valid[1], valid[3]))

        def hook(value, total, preview_image, *args, **kwargs):
            comfy.model_management.throw_exception_if_processing_interrupted()  # what makes Cancel work
            if on_progress is not None:
                on_progress(value, total)

        def event(name, data):
            if name == "executing" and data.get("node") is not None and on_node is not None:
                on_node(str(data["node"]))
        self.messages.on_event = event
        previous = getattr(comfy.utils, "PROGRESS_BAR_HOOK", None)
        comfy.utils.set_progress_bar_global_hook(hook)
        started = time.perf_counter()
        try:
            # a client id makes the executor send "executing" events (which node runs now) to self.messages
            self.executor.execute(prompt, prompt_id, {"client_id": "animatelcm-render"}, list(valid[2]))
        finally:
            comfy.utils.set_progress_bar_global_hook(previous)
        graph_seconds = time.perf_counter() - started
        if not self.executor.success:
            raise JobFailed(failure_message(self.executor.status_messages))
        if hasattr(self.executor, "history_result"):
            ui_outputs = self.executor.history_result.get("outputs", {})
        else:  # the March-2024 executor, which keeps every node's last ui output
            ui_outputs = self.executor.outputs_ui
        return Rendered(_output_files({i: ui_outputs.get(i) for i in valid[2]}), graph_seconds)


def _validate_takes_id():
    import execution
    return len(inspect.signature(execution.validate_prompt).parameters) > 1
