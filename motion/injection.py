"""Putting a motion module's layers into a ComfyUI MODEL through its long-stable extension points.

- Object patches (ModelPatcher.add_object_patch) swap each affected UNet block for a copy that
  holds the same layers plus the motion layer; ComfyUI swaps the originals back when it unpatches,
  so the image model is never changed. The copy keeps the original children under their original
  names and positions, so weight patches (LoRAs) and code that indexes a block still find them.
- A UNet function wrapper (set_model_unet_function_wrapper) tells the layers, per call, how many
  videos (cond/uncond chunks) the batch holds, and refuses frame counts the module cannot take.
- The patcher's size (ModelPatcher.size, what model_size() reports and ComfyUI plans VRAM with)
  grows by the layers' bytes, and the layers are children of the patched blocks, built from
  comfy.ops layers: ComfyUI moves, counts and (in low-VRAM mode) partially offloads them with the UNet.

Where the layers go is where AnimateDiff's UNet3D puts them (diffusers block → ComfyUI block):
down_blocks.i.motion_modules.j → input_blocks[1 + 3i + j], after the resnet/attention pair;
up_blocks.i.motion_modules.j → output_blocks[3i + j], before the upsampler;
mid_block.motion_modules.0 → middle_block, between the attention and the second resnet.
"""
import logging
import re
from collections import OrderedDict

import comfy.model_management
import comfy.utils
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

from .context_windows import CONTEXT_KEY, frames_of_window, run_windowed
from .errors import FrameCountError, MotionModuleError
from .frame_positions import POSITIONS_KEY, frame_positions
from .video_batch import video_layout

log = logging.getLogger(__name__)

MARK = "_animatelcm_original_block"  # on our block copies: the block they were made from
MOTION_CHILD = "motion_module"


def unet_block_path(position):
    match = re.fullmatch(r"(down_blocks|up_blocks)\.(\d+)\.motion_modules\.(\d+)", position)
    if match:
        kind, level, j = match.group(1), int(match.group(2)), int(match.group(3))
        return f"input_blocks.{1 + 3 * level + j}" if kind == "down_blocks" else f"output_blocks.{3 * level + j}"
    if position == "mid_block.motion_modules.0":
        return "middle_block"
    raise MotionModuleError(f"unknown motion-module position {position}")


class AnimatedBlock(TimestepEmbedSequential):
    """A copy of a UNet block that runs extra layers (the motion layer) right after its attention.

    Its own children keep their names and positions ("0", "1", "2"...), so weight patches and any
    code that indexes the block find what they expect; the extra layers are children too (moved,
    counted and saved with the model) but named, and appended last. ComfyUI runs a block by
    iterating over it (forward_timestep_embed), so iteration gives the order the layers run in.
    """

    def __init__(self, block, extra_layers):
        super().__init__(OrderedDict(block._modules.items()))
        children = list(block._modules.values())
        attention = [i for i, child in enumerate(children) if isinstance(child, SpatialTransformer)]
        insert_at = (attention[-1] if attention else 0) + 1
        for name, layer in extra_layers.items():
            self.add_module(name, layer)
        run_order = children[:insert_at] + list(extra_layers.values()) + children[insert_at:]
        object.__setattr__(self, "_run_order", run_order)  # a plain list: not a second registration
        object.__setattr__(self, MARK, block)

    def __iter__(self):
        return iter(self._run_order)


def block_with_motion_layer(block, layer):
    """A copy of `block` (the original, if `block` is already a copy) with `layer` after its attention."""
    return AnimatedBlock(getattr(block, MARK, block), {MOTION_CHILD: layer})


def block_with_layers_first(block, layers):
    """A copy of `block` that runs `layers` before the extra layers `block` already runs (if a copy)."""
    original = getattr(block, MARK, block)
    kept = {name: child for name, child in block._modules.items() if name not in original._modules and name not in layers}
    return AnimatedBlock(original, {**layers, **kept})


class MotionWrapper:
    """UNet function wrapper: sets the video layout for the motion layers during one UNet call.

    When the MODEL carries context options (the Context Windows node), the call is made window by
    window (motion/context_windows.py) and the frame limit applies to each window, unless the pack's
    conditioning-level windows (motion/windowed_conditioning.py) or ComfyUI's own context windows have
    already cut the batch to a window: never windowed twice.
    """

    def __init__(self, module_name, max_frames, inner=None, family=None, distilled_steps=None):
        self.module_name, self.max_frames, self.inner, self.family = module_name, max_frames, inner, family
        self.distilled_steps = distilled_steps  # what the sampler needs of a distilled module (Lightning's step count)

    def __call__(self, apply_model, args):
        options = args["c"].get("transformer_options", {})
        context = options.get(CONTEXT_KEY)
        if context is not None and "context_window" not in options:
            if context.context_length > self.max_frames and options.get(POSITIONS_KEY) is None:
                raise FrameCountError(
                    f"context_length {context.context_length} is longer than the {self.max_frames} frames the motion "
                    f"module '{self.module_name}' covers: set it to 16 (the training length) in Context Windows.")
            if frames_of_window() is None:
                return run_windowed(self._run, apply_model, args, context)
        return self._run(apply_model, args)

    def _run(self, apply_model, args):
        videos = len(args["cond_or_uncond"])
        frames = args["input"].shape[0] // videos
        positions = args["c"].get("transformer_options", {}).get(POSITIONS_KEY)
        if frames > self.max_frames and positions is None:
            raise FrameCountError(
                f"{frames} frames asked for, but the motion module '{self.module_name}' covers at most "
                f"{self.max_frames}. Add 'Context Windows (AnimateLCM)' after Apply Motion Module (any length, "
                f"windows of 16 frames), or 'Extend Frame Positions (AnimateLCM)' to go past {self.max_frames} "
                f"frames in one window; or lower the latent batch size to {self.max_frames} or fewer.")
        with video_layout(videos), frame_positions(positions):
            if self.inner is not None:
                return self.inner(apply_model, args)
            return apply_model(args["input"], args["timestep"], **args["c"])


def _block_width(position, level_channels):
    """Channels of the UNet block a position's layer runs in (diffusers' up blocks count from the bottom)."""
    kind, level = position.split(".")[:2] if not position.startswith("mid_block") else ("mid_block", None)
    if kind == "down_blocks":
        return level_channels[int(level)]
    if kind == "up_blocks":
        return level_channels[len(level_channels) - 1 - int(level)]
    return level_channels[-1]


def check_compatible(model, motion_module):
    """Refuse a module whose layers do not fit this UNet, position by position (an SD1.5 module on
    SDXL, or a file whose layer widths sit in the wrong places), before anything runs."""
    config = model.model.model_config
    unet = config.unet_config
    family = type(config).__name__
    channels = [unet["model_channels"] * m for m in unet["channel_mult"]]
    name = motion_module.name
    if unet.get("context_dim") != 768 or len(channels) != 4:
        raise MotionModuleError(
            f"'{name}' is a motion module for SD1.5 models; this MODEL is {family} (UNet levels of "
            f"{'/'.join(map(str, channels))} channels, text width {unet.get('context_dim')}). Load an SD1.5 "
            "checkpoint and apply the motion module to its MODEL.")
    misfits = [f"{position} is {width} wide where this UNet's block is {_block_width(position, channels)}"
               for position, width in motion_module.positions().items() if width != _block_width(position, channels)]
    if misfits:
        more = f" (and {len(misfits) - 3} more)" if len(misfits) > 3 else ""
        raise MotionModuleError(
            f"'{name}' does not fit this SD1.5 MODEL: {'; '.join(misfits[:3])}{more}. The file is damaged or "
            "was converted with its layers in the wrong places: download it again, or pick another SD1.5 "
            "motion module.")


def animatediff_evolved_marker(model):
    """Where AnimateDiff-Evolved (ADE) keeps its motion model on this MODEL, or None.

    ADE puts its motion model on the MODEL and injects it only while sampling, so its layers are not
    in the UNet yet: ours would run beside them. Read from ADE's model_injection.py: before ComfyUI
    had patcher extensions its ModelPatcherAndInjector carried `motion_models`; since then the motion
    model patchers sit in `additional_models["ADE"]`.
    """
    if getattr(model, "motion_models", None) is not None:
        return "motion_models"
    additional = getattr(model, "additional_models", None)
    if isinstance(additional, dict) and additional.get("ADE"):
        return 'additional_models["ADE"]'
    return None


def _remove_previous_motion(animated, new_name):
    """On a MODEL animated before by this pack: put the original blocks back and take off the old
    wrapper, so the new module replaces the old one whole (its mid-block layer and frame limit too).
    Returns the model wrapper to run inside the new one."""
    inner = animated.model_options.get("model_function_wrapper")
    previous = {path: getattr(block, MARK) for path, block in animated.object_patches.items() if hasattr(block, MARK)}
    if not previous:
        return inner
    if not isinstance(inner, MotionWrapper):
        raise MotionModuleError(
            f"This MODEL already has a motion module, and a node after it replaced its model wrapper, so "
            f"'{new_name}' cannot take the old module's place. Apply '{new_name}' to the MODEL from before "
            "the first Apply Motion Module.")
    for path, original in previous.items():
        animated.add_object_patch(path, original)  # back to the image model's own block
    log.info("motion module '%s' replaces '%s'", new_name, inner.module_name)
    return inner.inner


def motion_bytes(patcher):
    """Bytes of the extra layers a patcher's object patches add to its UNet."""
    return sum(comfy.model_management.module_size(child) for block in patcher.object_patches.values()
               if isinstance(block, AnimatedBlock) for name, child in block.named_children() if not name.isdigit())


def animate(model, motion_module, strength=1.0, precision=None):
    """A clone of `model` (a ModelPatcher) with the motion module's layers in its UNet; a motion
    module this pack applied before is replaced.

    precision: the dtype the motion layers compute in; None = the dtype the UNet computes in.
    """
    marker = animatediff_evolved_marker(model)
    if marker is not None:
        raise MotionModuleError(
            f"This MODEL already carries an AnimateDiff-Evolved motion model (in its {marker}); "
            f"'{motion_module.name}' would run beside it. Connect Apply Motion Module to the MODEL from "
            "before the AnimateDiff-Evolved node, or use one pack's motion module only.")
    check_compatible(model, motion_module)
    animated = model.clone()
    inner = _remove_previous_motion(animated, motion_module.name)
    base = animated.model
    dtype = precision or getattr(base, "manual_cast_dtype", None) or base.get_dtype()
    image_model_size = model.model_size() - motion_bytes(model)
    for position, layer in motion_module.build_layers(dtype).items():
        layer.strength = strength
        path = "diffusion_model." + unet_block_path(position)
        animated.add_object_patch(path, block_with_motion_layer(comfy.utils.get_attr(base, path), layer))
    # ComfyUI sizes a patcher once, from the unpatched model; the layers are ours to add
    animated.size = image_model_size + motion_bytes(animated)
    animated.set_model_unet_function_wrapper(
        MotionWrapper(motion_module.name, motion_module.max_frames, inner, motion_module.format.family,
                      motion_module.format.distilled_steps))
    return animated


def motion_module_on(model):
    """(name, family) of the motion module this pack applied to `model`, or None."""
    wrapper = motion_wrapper_on(model)
    return None if wrapper is None else (wrapper.module_name, wrapper.family)


def motion_wrapper_on(model):
    """The MotionWrapper of the motion module this pack applied to `model`, or None: read from its model
    wrapper chain (Image to Video's wrapper holds the motion wrapper inside it)."""
    return motion_wrapper_in(model.model_options)


def motion_wrapper_in(model_options):
    """The same, from a MODEL's model options (what ComfyUI's sampling wrappers are given)."""
    wrapper = model_options.get("model_function_wrapper")
    while wrapper is not None:
        if isinstance(wrapper, MotionWrapper):
            return wrapper
        wrapper = getattr(wrapper, "inner", None)
    return None
