"""Context windows around ComfyUI's whole conditioning pass, so that ControlNets run window by window.

ComfyUI computes ControlNet residuals in `calc_cond_batch` (comfy/samplers.py), for the whole batch
and *before* the UNet function wrapper: windows made inside the UNet wrapper (context_windows.
run_windowed) can only cut residuals already computed for every frame, so the ControlNet's memory and
time grow with the video. ComfyUI >= 0.3.1x wraps that pass (the CALC_COND_BATCH wrapper of
comfy/patcher_extension.py; core's own context windows and AnimateDiff-Evolved work at the same
level). There the pack runs each window's whole pass on its frames alone:
- the latents, timesteps and every per-frame conditioning tensor (prompt rows, masks, concat inputs)
  cut to the window's frames, as core's `IndexListContextHandler.get_resized_cond` cuts them;
- ComfyUI's own ControlNets holding only the window's frames of their hints (motion/control_hints.py);
  Advanced-ControlNet's, and IP-Adapter's attention patches, read the window from `ad_params`;
- the window marked as running, so the motion wrapper does not window it again and image-to-video
  cuts its start-image features to it.
The outputs are fused exactly as the UNet-level windows fuse them (the same windows, weights and order),
so a video without ControlNet gives the same numbers either way. A PREPARE_SAMPLING wrapper tells
ComfyUI's memory planning that a UNet call holds one window, not the whole video (as core's windows do).
"""
import torch

from .control_hints import check_hint_frames, controls_in, hints_of_window
from .context_windows import AD_PARAMS, CONTEXT_KEY, ad_params, each_window, frames_of_window, fuse
from .injection import motion_wrapper_in

WRAPPER_KEY = "animatelcm_context_windows"


def _wrappers():
    try:
        from comfy.patcher_extension import WrappersMP
    except ImportError:  # ComfyUI before patcher extensions (the March 2024 one): UNet-level windows only
        return None
    return WrappersMP if hasattr(WrappersMP, "CALC_COND_BATCH") and hasattr(WrappersMP, "PREPARE_SAMPLING") else None


def host_has_conditioning_windows():
    return _wrappers() is not None


def add_conditioning_windows(model):
    """Wrap the conditioning pass of `model` (a clone the caller owns) in the pack's windows, where the host can.
    Returns whether it could; without, the UNet-level windows do the work."""
    wrappers = _wrappers()
    if wrappers is None or not hasattr(model, "add_wrapper_with_key"):
        return False
    model.remove_wrappers_with_key(wrappers.CALC_COND_BATCH, WRAPPER_KEY)  # the node applied twice: once
    model.remove_wrappers_with_key(wrappers.PREPARE_SAMPLING, WRAPPER_KEY)
    model.add_wrapper_with_key(wrappers.CALC_COND_BATCH, WRAPPER_KEY, calc_cond_batch_in_windows)
    model.add_wrapper_with_key(wrappers.PREPARE_SAMPLING, WRAPPER_KEY, prepare_sampling_for_one_window)
    return True


def _cut_cond(entry, index, frames):
    """A copy of one cond dict (ComfyUI's processed conditioning) with its per-frame tensors cut to `index`."""
    cut = dict(entry)
    for key, value in entry.items():
        if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == frames:
            cut[key] = value[index.to(value.device)]
        elif key == "model_conds":
            cut[key] = {name: _cut_model_cond(c, index, frames) for name, c in value.items()}
    return cut


def _cut_model_cond(cond, index, frames):
    value = getattr(cond, "cond", None)
    if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == frames and hasattr(cond, "_copy_with"):
        return cond._copy_with(value[index.to(value.device)])
    return cond


def calc_cond_batch_in_windows(executor, model, conds, x_in, timestep, model_options):
    """ComfyUI's conditioning pass (CALC_COND_BATCH wrapper), made window by window under the pack's options."""
    transformer_options = model_options.get("transformer_options", {})
    options = transformer_options.get(CONTEXT_KEY)
    frames = x_in.shape[0]
    if (options is None or frames <= options.context_length or frames_of_window() is not None
            or "context_window" in transformer_options  # a video of one window; or windowed already
            or motion_wrapper_in(model_options) is None):  # no motion layers: every frame is its own, nothing to window
        return executor(model, conds, x_in, timestep, model_options)
    controls = controls_in(conds)
    check_hint_frames(controls, frames)  # before the first window runs: nothing runs half

    def run_window(window):
        index = torch.tensor(window, dtype=torch.long)
        window_options = {**model_options,
                          "transformer_options": {**transformer_options, AD_PARAMS: ad_params(window, frames)}}
        sub_conds = [None if cond is None else [_cut_cond(entry, index, frames) for entry in cond] for cond in conds]
        with hints_of_window(controls, window, frames):
            return executor(model, sub_conds, x_in[index.to(x_in.device)], timestep[index.to(timestep.device)],
                            window_options)

    results = each_window(frames, options, timestep[0], transformer_options.get("sample_sigmas"), run_window)
    return [torch.zeros_like(x_in) if cond is None else
            fuse([(window, outputs[i]) for window, outputs in results], x_in.shape, frames, 1, options)
            for i, cond in enumerate(conds)]


def prepare_sampling_for_one_window(executor, model, noise_shape, *args, **kwargs):
    """Plan memory for one window's UNet call, not the whole video's (core's context windows do the same)."""
    model_options = kwargs.get("model_options") or {}
    options = model_options.get("transformer_options", {}).get(CONTEXT_KEY)
    if options is not None and len(noise_shape) > 0 and noise_shape[0] > options.context_length \
            and motion_wrapper_in(model_options) is not None:
        noise_shape = [options.context_length, *list(noise_shape)[1:]]
    return executor(model, noise_shape, *args, **kwargs)
