"""SparseCtrl keyframes as a ComfyUI control: what ComfyUI's sampler calls for the residuals of each UNet call.

A `comfy.controlnet.ControlBase`, as every ControlNet, T2I-Adapter and Control-LoRA is: ComfyUI loads its
model with the UNet (get_models), times it (start/end percent), chains it after other controls and calls
`get_control` for every UNet call. It builds the condition and mask of the frames it is called for:
- under the pack's Context Windows (ComfyUI 0.3.x: the whole conditioning pass runs window by window,
  motion/windowed_conditioning.py), the call's `ad_params` name the window's frames of the video: the
  keyframes inside the window land on their places in it, and a window with no keyframe gets no residual;
- otherwise the call holds every frame (the March 2024 ComfyUI runs controls before any window: once per
  step on the whole video; the UNet-level windows then take each window's rows of the residuals).
SparseCtrl's temporal layers cover 32 frames (its position table); a call over more frames runs SparseCtrl
on its own windows of 16 frames (static, overlap 4) and fuses them per frame with pyramid weights, the
pack's window maths (motion/context_windows.py), each window again getting only its own keyframes.
Like Advanced-ControlNet's controls it carries `sub_idxs`, so the pack's windows leave it to build its own
hints (motion/control_hints.py).
"""
import inspect

import comfy.controlnet
import comfy.model_management
import torch

from ..motion.context_windows import AD_PARAMS, ContextOptions, batch_index, context_windows, fuse
from ..motion.video_batch import video_layout
from .keyframes import NODE, KeyframeError, fit_images, resolve, window_hint
from .sparsectrl import RGB

OWN_WINDOWS = ContextOptions(context_length=16, overlap=4, schedule="static", fuse="pyramid", freenoise=False)


class SparseCtrlKeyframes(comfy.controlnet.ControlBase):
    sub_idxs = None  # reads its window from ad_params and builds its own hint (motion/control_hints.py)

    def __init__(self, sparsectrl, images, frames, vae=None):
        """images: IMAGE [K, H, W, C], the keyframes; frames: their frames as written (keyframes.parse_frames);
        vae: encodes RGB keyframes (RGB SparseCtrl conditions on latents)."""
        super().__init__()
        self.sparsectrl, self.images, self.frames, self.vae = sparsectrl, images, frames, vae
        self.model_sampling_current = None
        self.latent_in = None  # the sampled model's latent scaling (× 0.18215 for SD1.5), set in pre_run
        self.conditions = None  # (latent size, [K, C, h, w]): the keyframes prepared once per run

    def copy(self):
        c = SparseCtrlKeyframes(self.sparsectrl, self.images, self.frames, self.vae)
        self.copy_to(c)
        return c

    def pre_run(self, model, percent_to_timestep_function):
        super().pre_run(model, percent_to_timestep_function)
        self.model_sampling_current = model.model_sampling
        self.latent_in = model.process_latent_in

    def cleanup(self):
        self.model_sampling_current, self.latent_in, self.conditions = None, None, None
        super().cleanup()

    def get_models(self):
        return super().get_models() + [self.sparsectrl.patcher]

    # --- the residuals ------------------------------------------------------------------------------

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options=None):
        previous = None
        if self.previous_controlnet is not None:  # the March 2024 ComfyUI passes no transformer_options
            extra = () if transformer_options is None else (transformer_options,)
            previous = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, *extra)
        if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
            return previous
        frames = x_noisy.shape[0] // batched_number
        window, length = self._window_of_call(frames, transformer_options or {})
        placed = resolve(self.frames, length)
        runs = [list(range(frames))] if frames <= self.sparsectrl.max_frames else context_windows(frames, OWN_WINDOWS)
        runs = [(run, [window[p] for p in run]) for run in runs]
        if not any(frame in placed for _, frames_of_run in runs for frame in frames_of_run):
            return previous  # no keyframe in these frames: no control, as the windows ask
        conditions = self._conditions(x_noisy)
        dtype = self.sparsectrl.compute_dtype
        timesteps = self.model_sampling_current.timestep(t).float()
        context = cond.get("crossattn_controlnet", cond["c_crossattn"])
        results = []
        for run, frames_of_run in runs:
            rows = batch_index(run, frames, batched_number).to(x_noisy.device)
            if not any(frame in placed for frame in frames_of_run):
                results.append((run, None))
                continue
            hint = window_hint(conditions, placed, frames_of_run).repeat(batched_number, 1, 1, 1)
            rows_context = context[rows.to(context.device)] if context.shape[0] == x_noisy.shape[0] else context
            results.append((run, self.residuals(
                x_noisy[rows], hint.to(x_noisy.device, dtype), timesteps[rows.to(timesteps.device)],
                comfy.model_management.cast_to_device(rows_context, x_noisy.device, dtype), batched_number)))
        return self._merged(self._fused(results, frames, batched_number), previous, x_noisy.dtype)

    def residuals(self, x, hint, timesteps, context, videos):
        """SparseCtrl's 13 residuals for one run of frames (`videos` chunks of them: cond, uncond)."""
        with video_layout(videos):  # the temporal layers attend across each chunk's frames only
            return self.sparsectrl.network(x, hint, timesteps, context)

    def _window_of_call(self, frames, transformer_options):
        """(the video's frames this call holds, in order; the video's frame count)."""
        params = transformer_options.get(AD_PARAMS)
        if params is not None and params.get("sub_idxs") is not None:
            window = list(params["sub_idxs"])
            if len(window) != frames:
                raise RuntimeError(f"{NODE}: the window names {len(window)} frames but the call holds {frames}")
            return window, int(params["full_length"])
        if "context_window" in transformer_options:
            raise KeyframeError(
                f"{NODE}: ComfyUI's own context windows do not tell a control which frames of the video a window "
                "holds, so the keyframes cannot be placed. Use 'Context Windows (AnimateLCM)' instead (it publishes "
                "each window's frames, as AnimateDiff-Evolved does).")
        return list(range(frames)), frames

    def _conditions(self, x_noisy):
        """[K, C, h, w] keyframe conditions for latents of x_noisy's size: pictures fitted to the video's size, and
        for RGB SparseCtrl encoded by the VAE and scaled as the model's latents (scripts/animate.py's
        `vae.encode(images * 2 - 1).latent_dist.sample() * 0.18215`; ComfyUI's VAE takes 0-1 pictures)."""
        size = tuple(x_noisy.shape[-2:])
        if self.conditions is None or self.conditions[0] != size:
            pixels = fit_images(self.images, size[1] * 8, size[0] * 8)
            if self.sparsectrl.kind == RGB:
                condition = self.latent_in(encode_keeping_loaded_models(self.vae, pixels.movedim(1, -1)).float())
            else:
                condition = pixels
            self.conditions = (size, condition.to(x_noisy.device))
        return self.conditions[1]

    def _fused(self, results, frames, videos):
        """One residual list over all frames from the runs' (a run without keyframes adds zeros, with its weight)."""
        computed = next(outs for _, outs in results if outs is not None)
        if len(results) == 1:
            return computed
        fused = []
        for index, like in enumerate(computed):
            shape = (videos * frames, *like.shape[1:])
            per_run = [(run, outs[index] if outs is not None else torch.zeros(
                (videos * len(run), *like.shape[1:]), dtype=like.dtype, device=like.device)) for run, outs in results]
            fused.append(fuse(per_run, shape, frames, videos, OWN_WINDOWS))
        return fused

    def _merged(self, outs, previous, output_dtype):
        """ComfyUI's own merge (strength, and the chained controls' residuals added), in this host's form: the March
        2024 ComfyUI takes (input, output-and-middle list, previous, dtype), later ones ({key: list}, previous, dtype)."""
        if len(inspect.signature(self.control_merge).parameters) == 4:
            return self.control_merge(None, outs, previous, output_dtype)
        return self.control_merge({"output": outs[:-1], "middle": outs[-1:]}, previous, output_dtype)


def encode_keeping_loaded_models(vae, pixels):
    """vae.encode(pixels) in the middle of sampling, with the models in use loaded again afterwards (ComfyUI's
    own VAE-input ControlNets do this); the VAE's posterior, which the March 2024 ComfyUI samples from the
    global RNG, drawn from a fixed seed so the same seed gives the same video (as Image to Video does)."""
    if vae is None:
        raise KeyframeError(f"{NODE}: an RGB SparseCtrl conditions on the keyframes' latents: connect the checkpoint's "
                            "VAE to 'vae'.")
    manager = comfy.model_management
    if hasattr(manager, "loaded_models"):
        in_use = manager.loaded_models(only_currently_used=True)
    else:
        in_use = [loaded.model for loaded in manager.current_loaded_models]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        latents = vae.encode(pixels)
    manager.load_models_gpu(in_use)
    return latents


def on_both_prompts(control, positive, negative):
    """(positive, negative) with `control` chained after each entry's control, as ComfyUI's Apply ControlNet does:
    one copy per existing control chain, shared by both prompts, so their passes batch into one call per step."""
    copies = {}
    out = []
    for conditioning in (positive, negative):
        applied = []
        for tensor, options in conditioning:
            options = options.copy()
            previous = options.get("control")
            if previous not in copies:
                copies[previous] = control.copy().set_previous_controlnet(previous)
            options["control"] = copies[previous]
            options["control_apply_to_uncond"] = False
            applied.append([tensor, options])
        out.append(applied)
    return tuple(out)
