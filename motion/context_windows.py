"""Context windows: a video longer than the motion module's training length, sampled window by window.

Every UNet call of a step runs the model on overlapping windows of `context_length` frames and
averages the windows' outputs per frame with fuse weights (AnimateDiff-Evolved's context options;
ComfyUI >= 0.3.5x has the same idea in comfy/context_windows.py). Per-frame inputs (the prompt's
per-frame conditioning, ControlNet residuals, the timesteps) are cut to each window's frames.
Where ComfyUI lets the pack wrap its conditioning pass, the windows are made there instead, so
that ControlNets run per window too (motion/windowed_conditioning.py); this file's UNet-level
windows (`run_windowed`) serve the hosts without that hook.

Schedules (N frames, L = context_length, O = overlap, Δ = L - O):
- static: windows start at 0, Δ, 2Δ...; the last one is moved back to end flush with the video.
- uniform: the static grid shifted every step by round(N·h(step)), h(step) = the bit-reversed step
  over 2^64 (AnimateDiff-Evolved's `ordered_halving`): 0, 1/2, 1/4, 3/4... so seams move each
  step. Without closed loop a window that runs past the end is replaced by one flush with the end
  and one flush with the start.
- batched: disjoint windows of L frames (the last may be shorter); no overlap, no averaging.
Closed loop: windows wrap from the last frame to the first, so the video loops seamlessly.
Fuse weights over a window of n frames: flat 1...1; pyramid 1, 2, ... n/2, n/2, ... 2, 1 (FreeNoise's
weighted average); overlap-linear 1 in the middle, ramps (k+1)/(O+1) over the O frames shared
with a neighbour, so a seam fades from one window to the next.

Each window's calls carry `transformer_options["ad_params"]`, AnimateDiff-Evolved's published
per-window parameters (`ad_params`), which IP-Adapter and Advanced-ControlNet read to give each frame
its own image, weight, mask or hint.
"""
import contextvars
from contextlib import contextmanager
from dataclasses import dataclass

import torch

SCHEDULES = ("uniform", "static", "batched")
FUSE_METHODS = ("pyramid", "flat", "overlap-linear")
CONTEXT_KEY = "animatelcm_context_windows"  # transformer_options key the options travel under
AD_PARAMS = "ad_params"  # AnimateDiff-Evolved's key, which other packs read: never rename it

_window = contextvars.ContextVar("animatelcm_window", default=None)  # (the window's frames, the video's frames)


def frames_of_window():
    """The video's frames the running UNet call sees (a window's, in order), or None when it sees them all.

    For per-frame inputs that live outside the call's arguments (the start image's features of
    image-to-video): they must be cut like the latents."""
    running = _window.get()
    return None if running is None else running[0]


def video_frames_of_window():
    """The frame count of the whole video whose window is running, or None outside the pack's windows."""
    running = _window.get()
    return None if running is None else running[1]


@contextmanager
def running_window(window, frames):
    """Marks the calls made inside as one window's (`window`: frame indices of a video of `frames` frames)."""
    token = _window.set((list(window), frames))
    try:
        yield
    finally:
        _window.reset(token)


def ad_params(window, frames):
    """The window as AnimateDiff-Evolved publishes it per window (animatediff/sampling.py,
    `create_exposed_params`: "DO NOT change any of the key names"), for the packs that read it:
    - IPAdapter_plus (cubiq/ComfyUI_IPAdapter_plus CrossAttentionPatch.py, `ipadapter_attention`, lines 78,
      128-157, 215-223): picks each frame's image, weight and mask with `sub_idxs` from a batch of `full_length`;
    - Advanced-ControlNet (adv_control/utils.py, `get_control_inject`, lines 689-692): reads `sub_idxs`,
      `full_length` and `context_length`, and cuts its hints, masks and keyframes itself.
    """
    return {"full_length": frames, "context_length": len(window), "sub_idxs": list(window)}


@dataclass(frozen=True)
class ContextOptions:
    context_length: int = 16
    overlap: int = 4
    schedule: str = "uniform"
    closed_loop: bool = False
    fuse: str = "pyramid"
    freenoise: bool = True


def ordered_halving(step):
    """The bit-reversal of `step` (64 bits) over 2^64: 0, 0.5, 0.25, 0.75, 0.125...: spreads shifts evenly."""
    return int(f"{step:064b}"[::-1], 2) / (1 << 64)


def _static(frames, length, overlap):
    windows, start = [], 0
    while True:
        if start + length >= frames:
            windows.append(list(range(frames - length, frames)))
            return windows
        windows.append(list(range(start, start + length)))
        start += length - overlap


def _uniform(frames, length, overlap, closed_loop, step):
    shift = int(round(frames * ordered_halving(step)))
    stop = frames + shift - (0 if closed_loop else overlap)
    windows = []
    for start in range(shift, stop, length - overlap):
        window = [(start + k) % frames for k in range(length)]
        wraps = window[-1] < window[0]
        if wraps and not closed_loop:  # keep frame order: one window flush with the end, one with the start
            candidates = [list(range(frames - length, frames)), list(range(length))]
        else:
            candidates = [window]
        windows.extend(c for c in candidates if c not in windows)
    return windows


def context_windows(frames, options, step=0):
    """The windows (lists of frame indices) of one step; every frame is in at least one."""
    length = options.context_length
    if frames <= length:
        return [list(range(frames))]
    if options.schedule == "batched":
        return [list(range(s, min(s + length, frames))) for s in range(0, frames, length)]
    overlap = min(options.overlap, length - 1)
    if options.schedule == "static":
        return _static(frames, length, overlap)
    if options.schedule == "uniform":
        return _uniform(frames, length, overlap, options.closed_loop, step)
    raise ValueError(f"context schedule '{options.schedule}' is not one of {', '.join(SCHEDULES)}")


def fuse_weights(window, frames, options):
    """Per-frame weights of one window's output (a float32 tensor of len(window))."""
    n = len(window)
    if options.fuse == "flat":
        return torch.ones(n)
    if options.fuse == "pyramid":
        return torch.tensor([min(k + 1, n - k) for k in range(n)], dtype=torch.float32)
    if options.fuse == "overlap-linear":
        weights = torch.ones(n)
        overlap = min(options.overlap, n // 2)
        ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        first, last = window[0] == 0 and not options.closed_loop, window[-1] == frames - 1 and not options.closed_loop
        if overlap and not first:
            weights[:overlap] = ramp
        if overlap and not last:
            weights[n - overlap:] = ramp.flip(0)
        return weights
    raise ValueError(f"fuse method '{options.fuse}' is not one of {', '.join(FUSE_METHODS)}")


def fuse(results, shape, frames, videos, options):
    """Weighted per-frame average of [(window, output)], the same whatever order the windows ran in.

    Outputs are [videos·len(window), ...]. They are summed in window order (sorted), so the floating
    point sum, and with it the video, does not depend on the order the windows were run.
    """
    total, weight = None, torch.zeros(videos * frames)
    for window, output in sorted(results, key=lambda item: item[0]):
        index = batch_index(window, frames, videos)
        w = fuse_weights(window, frames, options).repeat(videos)
        if total is None:
            total = torch.zeros(shape, dtype=output.dtype, device=output.device)
        total.index_add_(0, index.to(output.device), output * w.to(output).view(-1, *[1] * (output.ndim - 1)))
        weight.index_add_(0, index, w)
    return total / weight.to(total).view(-1, *[1] * (total.ndim - 1))


def batch_index(window, frames, videos):
    """Batch positions of a window's frames in a batch of `videos` consecutive videos of `frames` frames."""
    return torch.tensor([v * frames + f for v in range(videos) for f in window], dtype=torch.long)


def step_of(sigma, sample_sigmas):
    """(step, steps) of a UNet call: its sigma's place among the run's sigmas; (a key from sigma, None) if unknown."""
    if sample_sigmas is not None:
        match = torch.nonzero(torch.isclose(sample_sigmas.float().cpu(), sigma.float().cpu(), rtol=1e-4))
        if match.numel():
            return int(match[0]), len(sample_sigmas) - 1
    return int(sigma.float().item() * 1000) % (1 << 16), None  # still a different shift for each step


def _cut(value, index, batch):
    """`value` with every tensor whose first dimension is the batch cut to the window's batch positions."""
    if isinstance(value, torch.Tensor):
        return value[index.to(value.device)] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {k: _cut(v, index, batch) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, index, batch) for v in value]
    return value


def window_inputs(args, window, frames):
    """The UNet-wrapper arguments of one window: latents, timesteps and per-frame inputs cut to its frames,
    and the window published in `ad_params`.

    c_crossattn/c_concat hold one row per latent (ComfyUI repeats a prompt to the batch, and per-frame
    conditioning differs per row), and `control` holds the ControlNet residuals computed for every
    frame: each window gets its own frames' rows, never the first rows of the batch.
    """
    x, batch = args["input"], args["input"].shape[0]
    index = batch_index(window, frames, batch // frames)
    c = {}
    for key, value in args["c"].items():
        if key == "transformer_options":
            value = dict(value)
            if "sigmas" in value:
                value["sigmas"] = _cut(value["sigmas"], index, batch)
            value[AD_PARAMS] = ad_params(window, frames)
            c[key] = value
        elif key == "control" or isinstance(value, torch.Tensor):
            c[key] = _cut(value, index, batch)
        else:
            c[key] = value
    return {**args, "input": x[index.to(x.device)], "timestep": _cut(args["timestep"], index, batch), "c": c}


def each_window(frames, options, sigma, sample_sigmas, run_window):
    """[(window, run_window(window))] for the windows of this step's call (at noise level `sigma`).

    Each window runs marked as running (frames_of_window); Cancel is checked before every window and
    progress moves window by window; nothing is kept between calls, so an interrupted run leaves
    nothing behind.
    """
    import comfy.model_management
    import comfy.utils
    step, steps = step_of(sigma, sample_sigmas)
    windows = context_windows(frames, options, step)
    progress = comfy.utils.ProgressBar(steps * len(windows)) if steps else None
    results = []
    for n, window in enumerate(windows):
        comfy.model_management.throw_exception_if_processing_interrupted()
        with running_window(window, frames):
            results.append((window, run_window(window)))
        if progress is not None:
            progress.update_absolute(min(step, steps - 1) * len(windows) + n + 1)
    return results


def run_windowed(run, apply_model, args, options):
    """One UNet call made window by window: `run(apply_model, window_args)` per window, outputs fused.

    Used where ComfyUI has no conditioning-level hook (motion/windowed_conditioning.py): there the
    ControlNet residuals reach this call computed for every frame, and each window takes its own rows.
    """
    videos = len(args["cond_or_uncond"])
    frames = args["input"].shape[0] // videos
    if frames <= options.context_length:
        return run(apply_model, args)
    sample_sigmas = args["c"].get("transformer_options", {}).get("sample_sigmas")
    results = each_window(frames, options, args["timestep"][0], sample_sigmas,
                          lambda window: run(apply_model, window_inputs(args, window, frames)))
    return fuse(results, args["input"].shape, frames, videos, options)
