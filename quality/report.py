"""One video's quality report: every pair's measures, their means and worst frames, the window-seam and
loop-seam scores, as a dict that is its JSON.

Frames come one at a time (an iterator of uint8 [H, W, 3] arrays), so a video streamed from a file or
decoded a chunk at a time is measured holding two frames and the first (for the loop seam).
"""
import json
import math

import cv2
import numpy as np

from .measures import NO_ERROR, PairMeter
from .seams import describe, seam_ratio, window_seams

WORST = 3  # worst pairs listed per measure
ABOUT = {
    "flicker": "VBench temporal_flickering: (255 - mean |frame t - frame t-1|) / 255 on 8-bit values; 1 = no change",
    "warping_error": "Lai et al. 2018: frame t-1 warped onto frame t along DIS optical flow, mean squared RGB "
                     "difference (0-1) over pixels passing the forward-backward check; 0 = every change follows "
                     "the motion",
    "motion": "mean optical-flow length from frame t-1 to frame t, pixels",
    "window_seam": "warping error at the pairs where context windows meet / elsewhere; 1 = seams like the rest",
    "loop_seam": "warping error of the pair last frame -> first frame / the mean of the other pairs; 1 = the loop "
                 "closes like any other pair",
    "pairs": "pair t is frame t-1 -> frame t (frames counted from 0)",
}


class QualityInputError(ValueError):
    """Frames that cannot be measured; the message says which and what to do."""


def measure_video(frames, windows=None, steps=1, name="the video"):
    """The report (a JSON-ready dict) of an iterable of uint8 RGB frames.

    `windows`: the ContextOptions the video was sampled with (None: no context windows), `steps` the
    sampler's steps (the uniform schedule's seams move every step). `name` says which video in errors.
    """
    pairs, first, previous, meter = [], None, None, None
    count = 0
    for frame in frames:
        frame = _checked(frame, count, first, name)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if first is None:
            first = (frame, grey)
            meter = PairMeter(*frame.shape[:2])
        else:
            pairs.append(meter.measure(previous[0], frame, previous[1], grey))
        previous = (frame, grey)
        count += 1
    if count < 2:
        raise QualityInputError(f"{name} has {count} frame{'s' if count != 1 else ''}: the measures compare "
                                "consecutive frames, so a video needs at least 2")
    loop = meter.measure(previous[0], first[0], previous[1], first[1])
    return _report(pairs, loop, count, first[0].shape, windows, steps)


def _checked(frame, index, first, name):
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise QualityInputError(f"{name}: frame {index} is not 8-bit RGB ([H, W, 3] uint8) but "
                                f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    if first is not None and frame.shape != first[0].shape:
        height, width = first[0].shape[:2]
        raise QualityInputError(f"{name}: frame {index} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
                                f"{width}x{height}: the measures compare frames pixel by pixel, so every frame "
                                "must have one size (resize them first, e.g. with core's Upscale Image)")
    return np.ascontiguousarray(frame)


def _report(pairs, loop, count, shape, windows, steps):
    flicker = [p.flicker for p in pairs]
    errors = [p.warping_error for p in pairs]
    motion = [p.motion for p in pairs]
    seams = window_seams(count, windows, steps) if windows is not None else []
    ratio, at_seams, elsewhere = seam_ratio(errors, seams)
    if windows is None:
        why = "no context windows given"
    elif not seams:
        why = f"{count} frames fit in one {windows.context_length}-frame window: no seams"
    elif ratio is None:
        why = "every pair lies on a seam: nothing to compare with"
    else:
        why = None
    mean_error = float(np.mean(errors))
    return {
        "frames": count, "width": int(shape[1]), "height": int(shape[0]),
        "flicker": float(np.mean(flicker)),
        "warping_error": mean_error,
        "motion": float(np.mean(motion)),
        "window_seam": {"score": 1.0 if ratio is None else ratio, "at_seams": at_seams, "elsewhere": elsewhere,
                        "seams": seams, "windows": describe(windows, steps) if windows is not None else None,
                        **({"note": why} if why else {})},
        "loop_seam": {"score": (loop.warping_error + NO_ERROR) / (mean_error + NO_ERROR),
                      "warping_error": loop.warping_error, "flicker": loop.flicker, "motion": loop.motion},
        "worst": {"flicker": _worst(flicker, lowest=True), "warping_error": _worst(errors, lowest=False)},
        "pairs": {"frame": list(range(1, count)), "flicker": flicker, "warping_error": errors, "motion": motion,
                  "visible": [p.visible for p in pairs]},
        "about": ABOUT,
    }


def _worst(values, lowest):
    """The pairs (frame t of pair t-1 -> t) of the WORST lowest or highest values, worst first."""
    order = sorted(range(len(values)), key=lambda i: values[i] if lowest else -values[i])
    return [i + 1 for i in order[:WORST]]


def summary(report):
    """The five numbers of a report (what the node's FLOAT outputs and a sweep's table give)."""
    return {"flicker": report["flicker"], "warping_error": report["warping_error"], "motion": report["motion"],
            "window_seam": report["window_seam"]["score"], "loop_seam": report["loop_seam"]["score"]}


def to_json(report):
    """The report as JSON text, one top-level entry a line; a measure that came out NaN or infinite is
    written as null, never as JSON's non-standard NaN."""
    entries = (f"{json.dumps(key)}: {json.dumps(value, allow_nan=False)}" for key, value in _finite(report).items())
    return "{\n " + ",\n ".join(entries) + "\n}\n"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
