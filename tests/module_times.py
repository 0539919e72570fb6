"""A ComfyUI custom node with no nodes, for `tests/bench_vs_ade.py --module-times`: where a sampler's time goes.

Only the benchmark's own server loads it (never part of the pack). With $ALCM_MODULE_TIMES naming a file, it
times the forward of the modules whose class is in WATCHED, through torch's global module hooks (an official
API; nothing is replaced), and after each UNet call writes the running totals, seconds per class name, to
that file as JSON. The motion layers' own time is then told apart from the UNet's blocks around them. It also
counts the process's minor page faults during each watched class's forward ("page faults <class>"): a buffer
the allocator has just taken from the OS faults once per 4 KiB page, so this count shows allocator churn, and
where it happens, without the noise of a timing.
"""
import json
import os
import resource
import time
from pathlib import Path

from torch.nn.modules import module

WATCHED = {"UNetModel", "MotionLayer", "VanillaTemporalModule", "ResBlock", "SpatialTransformer", "Upsample"}
_totals, _started, _faults_at = {}, {}, {}
FAULTS = "page faults "


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _before(layer, args):
    if type(layer).__name__ in WATCHED:
        _faults_at[id(layer)] = _faults()
        _started[id(layer)] = time.perf_counter()


def _after(layer, args, output):
    name = type(layer).__name__
    if name in WATCHED and id(layer) in _started:
        _totals[name] = _totals.get(name, 0.0) + time.perf_counter() - _started.pop(id(layer))
        _totals[FAULTS + name] = _totals.get(FAULTS + name, 0) + _faults() - _faults_at.pop(id(layer))
        if name == "UNetModel":
            Path(os.environ["ALCM_MODULE_TIMES"]).write_text(json.dumps(_totals))


if os.environ.get("ALCM_MODULE_TIMES"):
    module.register_module_forward_pre_hook(_before)
    module.register_module_forward_hook(_after)

NODE_CLASS_MAPPINGS = {}
