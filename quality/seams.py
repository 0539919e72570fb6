"""Where context windows meet, and how much worse a video is there than elsewhere.

A seam is a frame pair (t-1, t) across which the set of windows that sample the frame changes: a
window starts at t or ends at t-1 (motion/context_windows.py makes the windows). Batched windows
meet in one pair; overlapping ones at both ends of their overlap, where a window's weight starts
or stops counting.

The uniform schedule shifts its windows every sampling step, so no one grid holds its seams. The
seams counted are those of every step of the run (steps 0 to steps-1, the shifts the sampler uses):
each step's fused prediction can leave a jump that the later steps only partly smooth, and a pair
that was never on a window's edge is the fair "elsewhere" to compare with. The static and batched
schedules have the same windows at every step.
"""
from ..motion.context_windows import context_windows
from .measures import NO_ERROR


def window_seams(frames, options, steps=1):
    """The frames t whose pair (t-1, t) lies across a window edge, sorted; [] for one window."""
    seams = set()
    for step in range(steps if options.schedule == "uniform" else 1):
        windows = context_windows(frames, options, step)
        covering = [frozenset(i for i, window in enumerate(windows) if frame in window) for frame in range(frames)]
        seams.update(t for t in range(1, frames) if covering[t] != covering[t - 1])
    return sorted(seams)


def describe(options, steps):
    """The windows in words, for the report."""
    text = (f"{options.context_length}-frame windows, overlap {options.overlap}, {options.schedule} schedule"
            + (", closed loop" if options.closed_loop else ""))
    if options.schedule == "uniform":
        text += f"; seams of all {steps} sampling steps (the grid shifts every step)"
    return text


def seam_ratio(errors, seams):
    """(ratio, mean error at the seams, mean error elsewhere) of per-pair warping errors (errors[t - 1] is
    pair t). 1 means the seams are like the rest; None when there is nothing to compare."""
    at = [errors[t - 1] for t in seams]
    elsewhere = [e for t, e in enumerate(errors, 1) if t not in set(seams)]
    if not at or not elsewhere:
        return None, _mean(at), _mean(elsewhere)
    return (_mean(at) + NO_ERROR) / (_mean(elsewhere) + NO_ERROR), _mean(at), _mean(elsewhere)


def _mean(values):
    return sum(values) / len(values) if values else None
