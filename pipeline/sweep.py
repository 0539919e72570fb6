"""`--sweep NODE.INPUT=V1,V2,...`: a grid of settings rendered as ordinary jobs (one per cell, resumable
like any batch), then one contact sheet and one table of the cells (pipeline/sweep_sheet.py).

Standard library only, like jobs.py and preflight.py: the arguments are checked before ComfyUI starts
(the grid's shape, its size against --yes); each cell's values are checked against the nodes'
own declarations (ranges, choices, finite numbers) once the node definitions are known, before
any cell renders.
"""
import importlib.util
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

from . import jobs, workflow_api

MOST_CELLS = 100  # a bigger grid renders only with --yes
# what --report and --sweep read videos with (the pack's own requirements; a --server driver may lack them)
REPORT_LIBRARIES = {"numpy": "numpy", "cv2": "opencv-python", "PIL": "Pillow", "av": "av", "torch": "torch"}


@dataclass(frozen=True)
class Axis:
    key: str  # NODE.INPUT, as --set takes it
    values: tuple  # as given: strings, or JSON values of a [...] list


def parse(texts):
    """The axes of the --sweep arguments, in order."""
    axes = []
    for text in texts:
        key, sep, given = text.partition("=")
        key, given = key.strip(), given.strip()
        if not sep or "." not in key:
            raise jobs.JobError(f"--sweep {text!r}: write NODE.INPUT=V1,V2,... (e.g. --sweep "
                                "'AnimateLCM Sampler.steps=1,2,4,8'), NODE being a node's title or id")
        if given.startswith("["):  # a JSON list, for values that hold commas
            try:
                values = json.loads(given)
            except json.JSONDecodeError as error:
                raise jobs.JobError(f"--sweep {key}: {given!r} is not a JSON list ({error})") from error
            if not isinstance(values, list):
                raise jobs.JobError(f"--sweep {key}: {given!r} is not a JSON list")
        else:
            values = [value.strip() for value in given.split(",")]
        if not values or any(value == "" for value in values):
            raise jobs.JobError(f"--sweep {key}={given}: an empty value; list the values with commas between them "
                                "(or as a JSON list, for values that hold commas)")
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise jobs.JobError(f"--sweep {key}: {', '.join(repeated)} is listed twice; give each value once")
        if any(axis.key == key for axis in axes):
            raise jobs.JobError(f"--sweep {key} is given twice: put all its values in one --sweep")
        axes.append(Axis(key, tuple(values)))
    return axes


def check(args):
    """Before ComfyUI starts: the grid's shape and size (over MOST_CELLS needs --yes), and what --report needs."""
    if args.sweep:
        if args.jobs:
            raise jobs.JobError("--sweep makes its own jobs, one per setting: give it without --jobs (settings every "
                                "cell shares go in --set)")
        axes = parse(args.sweep)
        cells = math.prod(len(axis.values) for axis in axes)
        if cells > MOST_CELLS and not args.yes:
            raise jobs.JobError(f"--sweep makes {cells} renders ({' x '.join(str(len(a.values)) for a in axes)} "
                                f"values), more than {MOST_CELLS}: add --yes to render them all, or sweep fewer values")
    if args.sweep or args.report:
        missing = [pip for module, pip in REPORT_LIBRARIES.items() if importlib.util.find_spec(module) is None]
        if missing:
            option = "--sweep" if args.sweep else "--report"
            raise jobs.JobError(f"{option} reads the videos with {', '.join(missing)}, which this Python lacks: pip "
                                f"install {' '.join(missing)} (or the pack's requirements.txt), or run without it")


def manifest_path(args):
    """--manifest, else <workflow name>.sweep.manifest.json in the current folder."""
    return args.manifest or Path(f"{Path(args.workflow).stem}.sweep.manifest.json")


def sweep_jobs(axes):
    """One job per cell of the grid, named by its settings ("steps=4  cfg=1.5"; NODE.INPUT where two axes
    share an input name)."""
    names = [axis.key.rpartition(".")[2] for axis in axes]
    names = [axis.key if names.count(name) > 1 else name for axis, name in zip(axes, names)]
    return [jobs.Job("  ".join(f"{name}={value}" for name, value in zip(names, cell)),
                     {axis.key: value for axis, value in zip(axes, cell)})
            for cell in itertools.product(*(axis.values for axis in axes))]


def check_cells(workflow, base, axes, catalog):
    """Refuse, before anything renders, a value that a node would refuse: a wrong name or type (as --set),
    a number outside the input's range, a choice it does not list, a NaN or infinite number."""
    for axis in axes:
        for value in axis.values:
            prompt = jobs.apply_overrides(workflow, {**base, axis.key: value}, catalog)
            node_id = jobs._find_node(workflow, axis.key.rpartition(".")[0], catalog)
            name = axis.key.rpartition(".")[2]
            kind, options = workflow_api.declared_inputs(prompt[node_id]["class_type"], catalog)[name]
            why = _refused(prompt[node_id]["inputs"][name], kind, options)
            if why:
                raise jobs.JobError(f"--sweep {axis.key}: {value!r} {why}, so node {node_id} "
                                    f"({workflow.titles[node_id]}) would refuse it; give values it takes")


def _refused(value, kind, options):
    """Why a node's input would refuse `value` (already of the input's type), or None."""
    if kind in ("INT", "FLOAT"):
        if isinstance(value, float) and not math.isfinite(value):
            return "is not a finite number"
        low, high = options.get("min"), options.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            return f"is outside {low if low is not None else '-inf'} to {high if high is not None else 'inf'}"
    if kind == "COMBO" and "options" in options and value not in options["options"]:
        shown = options["options"][:12]
        return (f"is not one of its choices ({', '.join(map(str, shown))}"
                + (f", and {len(options['options']) - 12} more)" if len(options["options"]) > 12 else ")"))
    return None
