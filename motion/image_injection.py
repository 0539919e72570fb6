"""Image-to-video: the start image's features in an animated MODEL, where AnimateLCM-I2V puts them.

The official UNet (animatelcm/models/unet_blocks.py) adds feature i of the image encoder once per
down block i, after its second resnet(+attention) and before that pair's motion module; nowhere
else. In ComfyUI's numbering that is input_blocks[2], [5], [8], [11]: each gets a named extra
layer in its block copy (motion/injection.py), ahead of the motion layer.

The features depend only on the reference latent, the frame count and motion_scale, never on the
noisy latent or the timestep, so the AnimateLCM sampler computes them once per run
(`features_once_per_run`) and they are dropped when the run ends; any other sampler gets them
computed on every UNet call, as the official pipeline does. Nothing is kept between runs.

Under context windows each window's UNet call gets the features of its own frames, for the positive
and negative videos alike: the pack's windows (made around the conditioning pass or inside the model
wrapper) cut the whole video's features by the window's frame indices
(motion/context_windows.frames_of_window); under ComfyUI's own windows, which cut the batch before
the model wrapper, the features are computed for the window's frames (the encoder treats every frame
on its own, so they are the same numbers).
"""
import contextvars
from contextlib import contextmanager

import comfy.utils
import torch
from torch import nn

from .context_windows import frames_of_window, video_frames_of_window
from .errors import FrameCountError, MotionModuleError
from .image_encoder import build_image_encoder
from .injection import MARK, MOTION_CHILD, block_with_layers_first, motion_bytes

FEATURE_BLOCKS = (2, 5, 8, 11)  # down level i → input_blocks[3i + 2]
IMAGE_CHILD = "image_features"

_features_of_call = contextvars.ContextVar("animatelcm_image_features", default=None)
_features_of_run = contextvars.ContextVar("animatelcm_image_features_of_run", default=None)


@contextmanager
def features_once_per_run():
    """Within this block, each I2V MODEL's features are computed at its first UNet call and reused."""
    token = _features_of_run.set({})
    try:
        yield
    finally:
        _features_of_run.reset(token)


class ImageConditioning(nn.Module):
    """The image encoder with the reference latent (scaled, 1 or `frames` of them) and motion_scale."""

    def __init__(self, encoder, reference, motion_scale):
        super().__init__()
        self.encoder = encoder
        self.reference = reference  # a plain tensor: tiny, moved per use
        self.motion_scale = motion_scale

    def features(self, frames, window=None):
        """The features of a video of `frames` frames; with `window` (frame indices), of those frames only."""
        weight = self.encoder.conv_in.weight
        reference = self.reference.to(weight.device, weight.dtype)
        if reference.shape[0] == 1:  # one image for every frame, as the official pipeline
            reference = reference.expand(frames if window is None else len(window), -1, -1, -1)
        elif reference.shape[0] != frames:
            raise FrameCountError(
                f"the image-to-video reference has {reference.shape[0]} frames but the video has {frames}: give "
                f"the 'AnimateLCM Image to Video' node one image, or exactly {frames}, or sample its own latent.")
        elif window is not None:
            reference = reference[list(window)]
        with torch.no_grad():
            return self.encoder(reference, self.motion_scale, window)


class ImageFeatureLayer(nn.Module):
    """Adds the start image's feature of one down level to every frame of every chunk (cond and uncond)."""

    def __init__(self, level, conditioning=None):
        super().__init__()
        self.level = level
        if conditioning is not None:  # a child of the UNet, so ComfyUI moves the encoder with it
            self.conditioning = conditioning

    def forward(self, x):
        features = _features_of_call.get()
        if features is None:
            raise RuntimeError("An image-to-video layer ran outside the pack's model wrapper: a node after "
                               "'AnimateLCM Image to Video' replaced the model's UNet function wrapper; put it before.")
        feature = features[self.level]
        window = frames_of_window()  # under the pack's Context Windows: this window's frames of the video's features
        if window is not None:
            feature = feature[window]
        feature = feature.to(x)
        return x + feature.repeat(x.shape[0] // feature.shape[0], 1, 1, 1)  # the same for every video (cond, uncond)


class ImageToVideoWrapper:
    """UNet function wrapper: makes the start image's features available to the layers during one call."""

    def __init__(self, conditioning, inner=None):
        self.conditioning, self.inner = conditioning, inner

    def __deepcopy__(self, memo):
        return self  # ModelPatcher.clone deep-copies model_options; the encoder is shared, never copied

    def _features(self, frames, size, window=None):
        run = _features_of_run.get()
        key = (self, frames, size, window)
        if run is not None and key in run:
            return run[key]
        features = self.conditioning.features(frames, window)
        if tuple(features[0].shape[-2:]) != size:
            reference = tuple(self.conditioning.reference.shape[-2:])
            raise ValueError(
                f"the image-to-video reference latent is {reference[1] * 8}×{reference[0] * 8} pixels but the video "
                f"latent is {size[1] * 8}×{size[0] * 8}: sample the LATENT that 'AnimateLCM Image to Video' outputs.")
        if run is not None:
            run[key] = features
        return features

    def __call__(self, apply_model, args):
        x = args["input"]
        frames = x.shape[0] // len(args["cond_or_uncond"])
        # ComfyUI's own context windows (0.3.5x+) have cut the batch to a window before this call: the
        # features are those of the window's frames. The pack's windows cut later (frames_of_window).
        core_window = args["c"].get("transformer_options", {}).get("context_window")
        window = tuple(core_window.index_list) if core_window is not None else None
        if window is not None:
            frames = max(len(self.conditioning.reference), max(window) + 1)
        elif video_frames_of_window() is not None:  # inside the pack's windows: the whole video's features
            frames = video_frames_of_window()
        token = _features_of_call.set(self._features(frames, tuple(x.shape[-2:]), window))
        try:
            if self.inner is not None:
                return self.inner(apply_model, args)
            return apply_model(x, args["timestep"], **args["c"])
        finally:
            _features_of_call.reset(token)


def _block(model, index):
    path = f"diffusion_model.input_blocks.{index}"
    block = model.object_patches.get(path)
    if block is None:  # not patched by this MODEL: start from the UNet's own block
        block = comfy.utils.get_attr(model.model, path)
        block = getattr(block, MARK, block)
    return path, block


def is_animated(model):
    """Whether `model` carries motion layers (from Apply Motion Module or this pack's I2V node)."""
    block = model.object_patches.get("diffusion_model.input_blocks.1")
    return block is not None and MOTION_CHILD in block._modules


def carries_image(model):
    """Whether `model` has the start image's features in it (the sampler then takes the I2V schedule)."""
    block = model.object_patches.get(f"diffusion_model.input_blocks.{FEATURE_BLOCKS[0]}")
    return block is not None and IMAGE_CHILD in block._modules


def require_image_encoder(motion_module):
    if motion_module.image_encoder is None:
        raise MotionModuleError(f"'{motion_module.name}' has no image encoder: pick AnimateLCM_sd15_i2v.ckpt.")


def add_image_conditioning(model, motion_module, reference, motion_scale):
    """A clone of the animated `model` whose four down levels get the features of `reference`.

    reference: scaled latents ([1 or frames, 4, h, w], as the UNet sees latents)."""
    require_image_encoder(motion_module)
    conditioned = model.clone()
    base = conditioned.model
    dtype = getattr(base, "manual_cast_dtype", None) or base.get_dtype()
    encoder = build_image_encoder(motion_module.image_encoder, dtype, motion_module.name)
    conditioning = ImageConditioning(encoder, reference.detach().to("cpu", torch.float32), motion_scale)
    for level, index in enumerate(FEATURE_BLOCKS):
        path, block = _block(conditioned, index)
        layer = ImageFeatureLayer(level, conditioning if level == 0 else None)
        conditioned.add_object_patch(path, block_with_layers_first(block, {IMAGE_CHILD: layer}))
    conditioned.size = model.model_size() - motion_bytes(model) + motion_bytes(conditioned)  # the encoder counts
    inner = conditioned.model_options.get("model_function_wrapper")
    if isinstance(inner, ImageToVideoWrapper):  # a new start image replaces the old one
        inner = inner.inner
    conditioned.set_model_unet_function_wrapper(ImageToVideoWrapper(conditioning, inner))
    return conditioned
