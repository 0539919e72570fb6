"""Jobs: a workflow file as an API prompt, `NODE.INPUT=VALUE` overrides, job files, and the manifest.

Nothing here runs a graph; the runners (in_process, server_client, ray_jobs) do. A catalog is the
node definitions of the ComfyUI that will run the jobs (workflow_api.LiveCatalog or /object_info).
"""
import copy
import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import workflow_api

SEED_INPUTS = ("seed", "noise_seed")
PREVIEW = (8, 128)  # frames, pixels of --preview: a quick look, about two minutes on a laptop CPU


class JobError(ValueError):
    """A workflow, override or job file that cannot be used; the message names it and the fix."""


@dataclass
class Workflow:
    prompt: dict  # API format
    titles: dict  # node id -> the title a user sees on the node (set by the user, or the display name)
    source: str


@dataclass
class Job:
    key: str  # names the job in the manifest: its "id", or a hash of its overrides
    overrides: dict = field(default_factory=dict)


def load_workflow(path, catalog):
    """A workflow JSON in either format: UI (as the frontend saves it) or API (as /prompt takes it)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise JobError(f"cannot read the workflow {path}: {error}") from error
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict) and "nodes" not in data:
        data = data["prompt"]  # a saved /prompt request body
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        prompt = workflow_api.to_api(data, catalog)
        titles = {str(n["id"]): n.get("title") for n in data["nodes"]}
    elif isinstance(data, dict) and data and all(isinstance(n, dict) and "class_type" in n for n in data.values()):
        prompt = {str(k): {"class_type": n["class_type"], "inputs": dict(n.get("inputs", {}))} for k, n in data.items()}
        titles = {str(k): (n.get("_meta") or {}).get("title") for k, n in data.items()}
    else:
        raise JobError(f"{path} is not a ComfyUI workflow: neither UI format (a 'nodes' list) nor API format "
                       "({id: {class_type, inputs}}); save it from ComfyUI with Save or Export (API)")
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
    """Overrides that set the frames and size of every Empty Latent Image and AnimateLCM Image to Video
    (and Load Video's frame cap)."""
    if preview:
        frames, size = frames or PREVIEW[0], size or PREVIEW[1]
    overrides = {}
    for node_id, node in workflow.prompt.items():
        inputs = node["inputs"]
        if node["class_type"] == "EmptyLatentImage":
            if frames:
                overrides[f"{node_id}.batch_size"] = frames
            if size and all(isinstance(inputs.get(k), int) for k in ("width", "height")):
                scale = size / max(inputs["width"], inputs["height"])
                for k in ("width", "height"):  # ComfyUI wants multiples of 8, at least 16
                    overrides[f"{node_id}.{k}"] = max(16, round(inputs[k] * scale / 8) * 8)
        if node["class_type"] == "ALCM_ImageToVideo":  # it makes the video latent itself
            if frames:
                overrides[f"{node_id}.frames"] = frames
            if size and all(isinstance(inputs.get(k), int) for k in ("width", "height")):
                scale = size / max(inputs["width"], inputs["height"])
                for k in ("width", "height"):
                    overrides[f"{node_id}.{k}"] = max(16, round(inputs[k] * scale / 8) * 8)
        if node["class_type"] == "ALCM_LoadVideo" and frames:
            overrides[f"{node_id}.frame_cap"] = frames
    return overrides


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
    except OSError as error:
        raise JobError(f"cannot read the job file {path}: {error}") from error
    rows = []
    if path.suffix.lower() == ".csv":
        for row in csv.DictReader(text.splitlines()):
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


class Manifest:
    """Results by job key, rewritten whole (atomically) after every job, so a killed batch keeps what it did."""

    def __init__(self, path, workflow_path):
        self.path = Path(path) if path else None
        self.data = {"workflow": str(workflow_path), "jobs": {}}
        if self.path and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError as error:
                raise JobError(f"the manifest {self.path} is not JSON ({error}): move it away to start over") from error

    def done(self, job):
        entry = self.data["jobs"].get(job.key)
        return bool(entry) and entry.get("status") == "done" and entry.get("overrides") == job.overrides

    def record(self, job, status, outputs=(), seed=None, seconds=None, graph_seconds=None, error=None, worker=None):
        """`seconds`: the job's time in the renderer, from its start to now; `graph_seconds`: the executor's."""
        now = time.time()
        entry = {"status": status, "overrides": job.overrides, "outputs": [str(p) for p in outputs], "seed": seed,
                 "seconds": None if seconds is None else round(seconds, 3),
                 "graph_seconds": None if graph_seconds is None else round(graph_seconds, 3),
                 "error": error, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
                 "finished_at": round(now, 3)}
        if worker is not None:
            entry["worker"] = worker
        self.data["jobs"][job.key] = entry
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(json.dumps(self.data, indent=2))
            os.replace(partial, self.path)
        return entry
