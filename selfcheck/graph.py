"""Running the self-check's graphs with ComfyUI's own executor, as a queued prompt runs.

In-memory objects (the tiny MODELs, CONDITIONING, LATENT, IMAGE) enter a graph through source
nodes registered in ComfyUI's node list for the self-check only, as a custom node would be, and
removed after it; model files go in a temporary folder added to ComfyUI's model folders for the run
(after the user's own folders), and the output/input folders point at a temporary folder meanwhile.
The outputs the check reads are taken from the executor's cache, as the test host does.
"""
import asyncio
import contextlib
import inspect
import uuid
from pathlib import Path

SOURCE = "ALCM_SelfCheckSource_"


class GraphFailed(RuntimeError):
    """ComfyUI refused the prompt or a node raised; the message names the node and ComfyUI's error."""

    def __init__(self, message, traceback=None):
        super().__init__(message)
        self.traceback = traceback or []


def _source_node(type_name, values):
    class Source:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"key": ("STRING", {"default": ""})}}

        RETURN_TYPES = (type_name,)
        FUNCTION = "get"
        CATEGORY = "AnimateLCM/self-check"

        @classmethod
        def IS_CHANGED(cls, key):
            return float("nan")  # never cached: each run's objects are new

        def get(self, key):
            return (values[key],)
    Source.__name__ = f"SelfCheckSource{type_name.title()}"
    return Source


class Graphs:
    """One self-check run's sources, model folders and executor; use as a context manager."""

    TYPES = ("MODEL", "CONDITIONING", "LATENT", "IMAGE", "VAE")

    def __init__(self, work_dir):
        self.work_dir = Path(work_dir)
        self.values = {}
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        import folder_paths
        import nodes
        for type_name in self.TYPES:
            nodes.NODE_CLASS_MAPPINGS[SOURCE + type_name] = _source_node(type_name, self.values)
            self.stack.callback(nodes.NODE_CLASS_MAPPINGS.pop, SOURCE + type_name, None)
        media = self.work_dir / "media"
        media.mkdir(parents=True, exist_ok=True)
        for get, put in ((folder_paths.get_output_directory, folder_paths.set_output_directory),
                         (folder_paths.get_input_directory, folder_paths.set_input_directory)):
            self.stack.callback(put, get())
            put(str(media))
        self.executor = _executor()
        return self

    def __exit__(self, *exc):
        self.stack.close()
        _forget_file_lists()

    def model_file(self, folder, name):
        """A path for a model file named `name` in ComfyUI's model folder `folder`, for this run only."""
        import folder_paths
        path = self.work_dir / "models" / folder
        if not path.is_dir():
            path.mkdir(parents=True)
            paths = folder_paths.folder_names_and_paths[folder][0]
            paths.append(str(path))  # after the user's folders: a file of theirs always wins
            self.stack.callback(paths.remove, str(path))
        _forget_file_lists()
        return path / name

    def source(self, value, type_name):
        """A node of the prompt that outputs `value` (of ComfyUI type `type_name`)."""
        key = str(len(self.values))
        self.values[key] = value
        return {"class_type": SOURCE + type_name, "inputs": {"key": key}}

    def run(self, prompt, want):
        """Execute `prompt`; {node id: its outputs} for the nodes in `want` (which run even when no
        output node needs them). Raises GraphFailed."""
        import execution
        _forget_file_lists()
        prompt_id = str(uuid.uuid4())
        validate = execution.validate_prompt
        valid = validate(prompt_id, prompt, None) if len(inspect.signature(validate).parameters) > 1 else validate(prompt)
        if inspect.isawaitable(valid):
            valid = asyncio.run(valid)
        no_outputs = not valid[0] and isinstance(valid[1], dict) and valid[1].get("type") == "prompt_no_outputs"
        if not valid[0] and not no_outputs:
            raise GraphFailed(f"ComfyUI refused the graph: {valid[1]} {valid[3]}")
        outputs = list(dict.fromkeys(list(valid[2] if valid[0] else []) + [str(n) for n in want]))
        self.executor.execute(prompt, prompt_id, {}, outputs)
        if not self.executor.success:
            for event, data in self.executor.status_messages:
                if event == "execution_error":
                    raise GraphFailed(f"{data['node_type']} raised {data['exception_type']}: "
                                      f"{str(data['exception_message']).strip()}", data.get("traceback"))
            raise GraphFailed("the graph failed without an error message")
        return {str(n): self._outputs(str(n)) for n in want}

    def _outputs(self, node_id):
        cached = (self.executor.caches.outputs.get(node_id) if hasattr(self.executor, "caches")
                  else self.executor.outputs.get(node_id))
        values = getattr(cached, "outputs", cached)  # ComfyUI 0.3.6x+ caches CacheEntry(ui, outputs)
        return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]


class _Messages:
    """What ComfyUI's executor needs of its PromptServer: somewhere to send status messages."""
    client_id = last_node_id = last_prompt_id = None

    def send_sync(self, event, data, sid=None):
        pass

    def queue_updated(self):
        pass


def _executor():
    import execution
    if "cache_args" in inspect.signature(execution.PromptExecutor).parameters:
        # an LRU cache keeps every node's outputs after the run, where the check reads them
        return execution.PromptExecutor(_Messages(), cache_type=execution.CacheType.LRU,
                                        cache_args={"lru": 50, "ram": 16.0})
    return execution.PromptExecutor(_Messages())


def _forget_file_lists():
    import folder_paths
    cache = getattr(folder_paths, "filename_list_cache", None)
    if isinstance(cache, dict):
        cache.clear()
