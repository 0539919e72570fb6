"""Jobs: a workflow file as an API prompt, `NODE.INPUT=VALUE` overrides, job files, and the manifest.

Nothing here runs a graph; the runners (in_process, server_client, ray_jobs) do. A catalog is the
node definitions of the ComfyUI that will run the jobs (workflow_api.LiveCatalog or /object_info).
"""
import contextlib
import copy
import csv
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import workflow_api

log = logging.getLogger("animatelcm.render")

SEED_INPUTS = ("seed", "noise_seed")
PREVIEW = (8, 128)  # frames, pixels of --preview: a quick look, about two minutes on a laptop CPU
# The nodes --frames/--size change: (the frame input, its range, the width/height range or None), as their
# INPUT_TYPES declare them (nodes/i2v_nodes.py, nodes/video_nodes.py; ComfyUI's nodes.py, whose MAX_RESOLUTION
# is 16384 since 2024 and was 8192 before: an older ComfyUI's own check refuses the sizes in between)
RESIZED = {"EmptyLatentImage": ("batch_size", (1, 4096), (16, 16384)),
           "ALCM_ImageToVideo": ("frames", (1, 64), (16, 2048)),
           "ALCM_LoadVideo": ("frame_cap", (0, 100000), None),
           "SVD_img2vid_Conditioning": ("video_frames", (1, 4096), (16, 16384))}
NODE_NAMES = {"EmptyLatentImage": "Empty Latent Image", "ALCM_ImageToVideo": "AnimateLCM Image to Video",
              "ALCM_LoadVideo": "Load Video (AnimateLCM)", "SVD_img2vid_Conditioning": "SVD_img2vid_Conditioning"}


class JobError(ValueError):
    """A workflow, override or job file that cannot be used; the message names it and the fix."""


class ManifestNotWritten(OSError):
    """The manifest could not be written after a job; the message names the job's outputs, which are kept."""


@dataclass
class Workflow:
    prompt: dict  # API format
    titles: dict  # node id -> the title a user sees on the node (set by the user, or the display name)
    source: str


@dataclass
class Job:
    key: str  # names the job in the manifest: its "id", or a hash of its overrides
    overrides: dict = field(default_factory=dict)


def read_workflow(path):
    """The JSON of a workflow file in either format, checked for its shape (no ComfyUI needed)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise JobError(f"cannot read the workflow {path}: {error}") from error
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict) and "nodes" not in data:
        data = data["prompt"]  # a saved /prompt request body
    is_ui = isinstance(data, dict) and isinstance(data.get("nodes"), list)
    is_api = isinstance(data, dict) and data and all(isinstance(n, dict) and "class_type" in n for n in data.values())
    if not (is_ui or is_api):
        raise JobError(f"{path} is not a ComfyUI workflow: neither UI format (a 'nodes' list) nor API format "
                       "({id: {class_type, inputs}}); save it from ComfyUI with Save or Export (API)")
    return data


def node_types(data):
    """The node types of a workflow's JSON (read_workflow's), in either format."""
    if isinstance(data.get("nodes"), list):
        return [n.get("type") for n in data["nodes"] if isinstance(n, dict)]
    return [n["class_type"] for n in data.values()]


def load_workflow(path, catalog):
    """A workflow JSON in either format: UI (as the frontend saves it) or API (as /prompt takes it)."""
    data = read_workflow(path)
    if isinstance(data.get("nodes"), list):
        prompt = workflow_api.to_api(data, catalog)
        titles = {str(n["id"]): n.get("title") for n in data["nodes"]}
    else:
        prompt = {str(k): {"class_type": n["class_type"], "inputs": dict(n.get("inputs", {}))} for k, n in data.items()}
        titles = {str(k): (n.get("_meta") or {}).get("title") for k, n in data.items()}
    for node_id, node in prompt.items():
        entry = catalog.get(node["class_type"]) if hasattr(catalog, "get") else None
        titles[node_id] = titles.get(node_id) or (entry or {}).get("display_name") or node["class_type"]
    return Workflow(prompt, titles, str(path))


def parse_set(text):
    """'NODE.INPUT=VALUE' -> ('NODE.INPUT', 'VALUE'); NODE may hold dots, the input name does not."""
    target, sep, value = text.partition("=")
    if not sep or "." not in target:
        raise JobError(f"--set {text!r}: write NODE.INPUT=VALUE, NODE being a node's title or id "
                       "(e.g. --set 'AnimateLCM Sampler.seed=7')")
    return target.strip(), value


def _find_node(workflow, ref, catalog):
    """The id of the node `ref` names: its id, its title (exact, then in any case), or its type or the
    type's display name (when a user renamed the node but asks for it by what it is)."""
    if ref in workflow.prompt:
        return ref

    def kind_names(node_id):
        class_type = workflow.prompt[node_id]["class_type"]
        entry = catalog.get(class_type) if hasattr(catalog, "get") else None
        return {class_type.casefold(), str((entry or {}).get("display_name", class_type)).casefold()}
    matchers = (lambda i: workflow.titles.get(i) == ref,
                lambda i: str(workflow.titles.get(i)).casefold() == ref.casefold(),
                lambda i: ref.casefold() in kind_names(i))
    for matches in matchers:
        same = [i for i in workflow.prompt if matches(i)]
        if len(same) == 1:
            return same[0]
        if len(same) > 1:
            raise JobError(f"'{ref}' fits nodes {', '.join(f'{i} ({workflow.titles[i]})' for i in same)}: "
                           f"use a node id instead (e.g. {same[0]}.INPUT=...)")
    nodes = ", ".join(f"{i} ({t})" for i, t in sorted(workflow.titles.items(), key=lambda x: _id_order(x[0]))
                      if i in workflow.prompt)
    raise JobError(f"no node '{ref}' in {workflow.source}; its nodes (id, title): {nodes}")


def _id_order(node_id):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _coerce(value, kind, where):
    """A value from the command line or a job file, as the input's type wants it."""
    try:
        if kind in ("INT", "FLOAT") and isinstance(value, bool):
            raise ValueError("a boolean")
        if kind == "INT":
            number = float(value) if isinstance(value, float) else int(value)
            if number != int(number):
                raise ValueError("not whole")
            return int(number)
        if kind == "FLOAT":
            return float(value)  # NaN and inf pass here: the node refuses them by name
        if kind == "BOOLEAN":
            return value if isinstance(value, bool) else {"true": True, "false": False, "1": True, "0": False}[
                str(value).strip().lower()]
    except (ValueError, KeyError, TypeError, OverflowError):
        raise JobError(f"{where}: {value!r} is not a{'n' if kind[0] in 'AEIOU' else ''} {kind}") from None
    if kind in ("STRING", "COMBO"):
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):  # another pack's type: a JSON value if it reads as one
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def apply_overrides(workflow, overrides, catalog):
    """A new prompt with {'NODE.INPUT': value} applied; the workflow itself is not changed."""
    prompt = copy.deepcopy(workflow.prompt)
    for target, value in overrides.items():
        ref, _, input_name = target.rpartition(".")
        node_id = _find_node(workflow, ref, catalog)
        class_type = prompt[node_id]["class_type"]
        declared = workflow_api.declared_inputs(class_type, catalog)
        if input_name not in declared:
            raise JobError(f"node {node_id} ({workflow.titles[node_id]}) has no input '{input_name}'; "
                           f"its inputs: {', '.join(declared)}")
        prompt[node_id]["inputs"][input_name] = _coerce(value, declared[input_name][0], f"{target}")
    return prompt


def resize(workflow, frames=None, size=None, preview=False):
    """Overrides that set the frames and size of every Empty Latent Image, AnimateLCM Image to Video and
    SVD_img2vid_Conditioning (and Load Video's frame cap). check_resize has refused what the nodes would not take."""
    if preview:
        frames, size = PREVIEW[0] if frames is None else frames, PREVIEW[1] if size is None else size
    overrides = {}
    for node_id, node in workflow.prompt.items():
        if node["class_type"] not in RESIZED:
            continue
        inputs, (frames_input, _, size_range) = node["inputs"], RESIZED[node["class_type"]]
        if frames is not None:
            overrides[f"{node_id}.{frames_input}"] = frames
        if size is not None and size_range and all(isinstance(inputs.get(k), int) for k in ("width", "height")):
            scale = size / max(inputs["width"], inputs["height"])
            for k in ("width", "height"):  # multiples of 8, never under the node's minimum
                overrides[f"{node_id}.{k}"] = max(size_range[0], round(inputs[k] * scale / 8) * 8)
    return overrides


def stand_in_size(size=None, preview=False):
    """The side of stand-in videos and pictures: the latents' size (--size, or --preview's), else None (512)."""
    return size or (PREVIEW[1] if preview else None)


def cut_story(workflow, frames=None, preview=False):
    """What to tell a user whose --preview or --frames renders fewer frames than the workflow has when a Prompt
    Schedule tells a story over them (its keyframes past the last frame are never reached); else None. The
    frames are not stretched to fit: keyframes are the user's frame numbers, and a quick look stays quick."""
    option = f"--frames {frames}" if frames is not None else "--preview"
    if preview and frames is None:
        frames = PREVIEW[0]
    if frames is None or not any(n["class_type"] == "ALCM_PromptSchedule" for n in workflow.prompt.values()):
        return None
    own = [n["inputs"].get(RESIZED[n["class_type"]][0]) for n in workflow.prompt.values() if n["class_type"] in RESIZED]
    own = max((count for count in own if isinstance(count, int) and not isinstance(count, bool)), default=None)
    if own is None or frames >= own:
        return None
    return (f"{option} renders {frames} of the workflow's {own} frames: keyframes of its Prompt Schedule after "
            f"frame {frames - 1} are never reached (the node's warning names them), so the video shows the start of "
            f"the story only. Add --frames {own} to render all of it")


def check_resize(types, frames=None, size=None, preview=False):
    """Refuse --frames and --size that a resized node of the workflow (its `types`) would not take; they
    are judged before ComfyUI starts, so the ranges are RESIZED's (a test holds them to the nodes')."""
    if preview:
        frames, size = PREVIEW[0] if frames is None else frames, PREVIEW[1] if size is None else size
    present = [t for t in RESIZED if t in types]
    for option, value, index, unit in (("--frames", frames, 1, "frames"), ("--size", size, 2, "pixels")):
        if value is None:
            continue
        if value < 1:
            raise JobError(f"{option} {value}: give a positive number of {unit} (e.g. {option} "
                           f"{PREVIEW[index - 1]}), or leave it out to keep the workflow's")
        for class_type in present:
            low, high = RESIZED[class_type][index] or (value, value)
            if not low <= value <= high:
                raise JobError(f"{option} {value}: the workflow's {NODE_NAMES[class_type]} takes {low} to {high} "
                               f"{unit}: give a {option} in that range")


def seeds(prompt):
    """{node id: seed} of every seed input the prompt sets by value."""
    return {i: n["inputs"][k] for i, n in prompt.items() for k in SEED_INPUTS
            if isinstance(n["inputs"].get(k), int)}


def job_key(overrides):
    return hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]


def read_jobs(path):
    """Jobs of a JSONL file (one JSON object per line) or a CSV file (a header of NODE.INPUT columns);
    an "id" field names a job, else it is named by its overrides."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise JobError(f"cannot read the job file {path}: {error}") from error
    rows = []
    if path.suffix.lower() == ".csv":
        for row in csv.DictReader(text.splitlines(keepends=True)):  # keepends: a quoted value may hold newlines
            rows.append((f"row {len(rows) + 2}", {k.strip(): v for k, v in row.items() if k and v not in (None, "")}))
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise JobError(f"{path} line {number} is not JSON ({error}): write one object per line, "
                               'e.g. {"id": "fox", "AnimateLCM Sampler.seed": 3}') from error
            if not isinstance(row, dict):
                raise JobError(f"{path} line {number}: a job is a JSON object of NODE.INPUT: value")
            rows.append((f"line {number}", row))
    jobs, seen = [], set()
    for where, row in rows:
        overrides = {k: v for k, v in row.items() if k != "id"}
        bad = [k for k in overrides if "." not in k]
        if bad:
            raise JobError(f"{path} {where}: {', '.join(bad)} is not NODE.INPUT (e.g. 'KSampler.seed')")
        key = str(row["id"]) if "id" in row else job_key(overrides)
        if key in seen:
            raise JobError(f"{path} {where}: a second job named {key!r}: give each job its own id")
        seen.add(key)
        jobs.append(Job(key, overrides))
    if not jobs:
        raise JobError(f"{path} holds no job")
    return jobs


def manifest_path(manifest, jobs_file):
    """--manifest, else <jobs file>.manifest.json beside a job file, else none (one run)."""
    return manifest or (jobs_file.with_name(jobs_file.stem + ".manifest.json") if jobs_file else None)


class Manifest:
    """Results by job key, rewritten whole (atomically) after every job, so a killed batch keeps what it did."""

    def __init__(self, path, workflow_path):
        self.path = Path(path) if path else None
        self.data = {"workflow": str(workflow_path), "jobs": {}}
        self.unwritten = []  # keys of jobs recorded while the file could not be written
        if self.path and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise JobError(f"cannot read the manifest {self.path} ({error}): move it away to start over, "
                               "or give another --manifest") from error
            jobs = self.data.get("jobs") if isinstance(self.data, dict) else None
            if not isinstance(jobs, dict) or not all(isinstance(entry, dict) for entry in jobs.values()):
                raise JobError(f"{self.path} is not a manifest of this renderer (an object whose \"jobs\" maps job "
                               "ids to results): move it away to start over, or give another --manifest")

    def done(self, job):
        entry = self.data["jobs"].get(job.key)
        return bool(entry) and entry.get("status") == "done" and entry.get("overrides") == job.overrides

    def record(self, job, status, outputs=(), seed=None, seconds=None, graph_seconds=None, error=None, worker=None,
               **measured):
        """`seconds`: the job's time in the renderer, from its start to now; `graph_seconds`: the executor's;
        `measured`: more numbers of the job (peak memory). Raises ManifestNotWritten (the entry is kept here,
        and written with the next one that succeeds)."""
        now = time.time()
        entry = {"status": status, "overrides": job.overrides, "outputs": [str(p) for p in outputs], "seed": seed,
                 "seconds": None if seconds is None else round(seconds, 3),
                 "graph_seconds": None if graph_seconds is None else round(graph_seconds, 3),
                 "error": error, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
                 "finished_at": round(now, 3)}
        if worker is not None:
            entry["worker"] = worker
        entry.update(measured)
        self.data["jobs"][job.key] = entry
        if self.path:
            try:
                self._write()
            except OSError as failure:
                self.unwritten.append(job.key)
                raise ManifestNotWritten(
                    f"job {job.key} {'is done' if status == 'done' else 'failed'}, but the manifest {self.path} "
                    f"could not be written ({failure}); "
                    + (f"its outputs are kept: {', '.join(entry['outputs'])}" if entry["outputs"] else
                       "it has no outputs")) from failure
            self.unwritten.clear()  # the file holds every entry now
        return entry

    def annotate(self, job, **fields):
        """Add `fields` to a recorded job's entry (its quality report) and write the manifest; raises
        ManifestNotWritten (they are kept here, and written with the next write that succeeds)."""
        self.data["jobs"][job.key].update(fields)
        if self.path:
            try:
                self._write()
            except OSError as failure:
                raise ManifestNotWritten(f"the manifest {self.path} could not be written ({failure}): job {job.key}'s "
                                         f"{', '.join(fields)} is not in it") from failure

    def _write(self):
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(self.data, indent=2))
            os.replace(partial, self.path)
        finally:  # a failed replace, or Ctrl-C between the two steps, leaves no half-made file
            with contextlib.suppress(OSError):
                partial.unlink()


def prepare(workflow, base, job, catalog):
    """The job's API prompt: the workflow with the command's overrides, then the job's own."""
    return apply_overrides(workflow, {**base, **job.overrides}, catalog)


def seed_of(prompt):
    """The prompt's seed: one number when every seed widget agrees, else {node: seed} (None without any)."""
    found = seeds(prompt)
    return next(iter(found.values())) if len(set(found.values())) == 1 else (found or None)


def record(manifest, job, status, *details, **more):
    """manifest.record; a manifest that cannot be written is said, with the outputs, and the batch goes on."""
    try:
        return manifest.record(job, status, *details, **more)
    except ManifestNotWritten as error:
        log.error("!! %s", error)
        return manifest.data["jobs"][job.key]
