"""Loading an AnimateLCM-SVD-xt UNet into ComfyUI's own Stable Video Diffusion model.

The released files are diffusers state dicts, which ComfyUI cannot detect (its diffusers detection
knows only 2-D UNets, ComfyUI #2674). Renamed to ComfyUI's layout (svd/keys.py) they are detected as
`SVD_img2vid`, so ComfyUI's model, dtype choice and low-VRAM loading apply as to any of its UNets.

Memory: ComfyUI's loader copies a whole state dict into the model at once, so the file's pages (6.1 GB,
memory-mapped) and the model (6.1 GB in fp32 on a CPU) would be resident together. Instead ComfyUI gets
placeholders of the right shapes and dtypes (one element each, broadcast) to detect and build the model
from, and the weights are then copied in one tensor at a time, each file page given back as soon as it
is copied: loading holds about one copy of the weights.
"""
import os

import comfy.model_base
import comfy.sd
import torch

from ..weights.files import read_state_dict
from ..weights.mapped_pages import release
from .errors import SVDModelFileError
from .keys import comfy_names, is_diffusers_svd_unet

CHECKPOINT_UNET = "model.diffusion_model."
RELEASE_EVERY = 32 * 2**20  # bytes copied between page releases (each reads /proc/self/maps once)
PICK = ("Pick AnimateLCM-SVD-xt.safetensors or AnimateLCM-SVD-xt-1.1.safetensors (wangfuyun/AnimateLCM-SVD-xt) "
        "from models/diffusion_models.")


def load_animatelcm_svd(path):
    """A ComfyUI MODEL (ModelPatcher of an SVD_img2vid) from a diffusers- or ComfyUI-layout SVD UNet file."""
    name = os.path.basename(path)
    unet = comfy_layout(read_state_dict(path), name)
    try:
        patcher = _comfy_unet_loader(placeholders(unet))
    except (IndexError, KeyError, RuntimeError, AssertionError, ZeroDivisionError) as error:  # detection half-matched
        raise SVDModelFileError(f"'{name}' does not fit Stable Video Diffusion's UNet: ComfyUI could not build a "
                                f"model from its {len(unet)} tensors ({type(error).__name__}: {error}). It is cut "
                                f"short or a different model. {PICK}") from error
    if patcher is None or not isinstance(patcher.model, comfy.model_base.SVD_img2vid):
        raise SVDModelFileError(f"'{name}' has the keys of a video UNet, but ComfyUI does not recognise it as "
                                f"Stable Video Diffusion (its layer sizes differ). {PICK}")
    copy_weights(patcher.model.diffusion_model, unet, name)
    return patcher


def comfy_layout(state_dict, name):
    """The UNet's tensors under ComfyUI's names, or a refusal that says what the file is."""
    keys = list(state_dict)
    empty = [f"'{k}' {tuple(state_dict[k].shape)}" for k in keys if 0 in state_dict[k].shape]
    if empty:  # ComfyUI reads layer widths from these shapes, and divides by some of them
        raise SVDModelFileError(f"'{name}' declares layers with no channels (a 0 in their shapes): "
                                f"{', '.join(empty[:4])}. The file is damaged or was written wrong. {PICK}")
    if any(k.startswith(("conditioner.", "first_stage_model.")) for k in keys):
        video = any(".time_stack." in k for k in keys)
        raise SVDModelFileError(
            f"'{name}' is a full {'Stable Video Diffusion' if video else 'Stable Diffusion'} checkpoint (UNet, image "
            f"encoder and VAE), not an AnimateLCM-SVD-xt UNet. "
            + ("Load it with Image Only Checkpoint Loader from models/checkpoints (it gives the CLIP vision and VAE "
               "the AnimateLCM-SVD-xt workflow needs). " if video else "") + PICK)
    if any(".motion_modules." in k or k.startswith("motion_modules.") for k in keys):
        raise SVDModelFileError(f"'{name}' is an AnimateDiff/AnimateLCM SD1.5 motion module: it goes in "
                                f"models/animatediff_models and through 'Load Motion Module'. {PICK}")
    if is_diffusers_svd_unet(keys):
        try:
            names = comfy_names(keys)
        except KeyError as error:
            raise SVDModelFileError(f"'{name}' is a diffusers video UNet with a layer this loader does not know "
                                    f"({error.args[0]}). {PICK}") from error
        return {names[k]: v for k, v in state_dict.items()}
    if all(k.startswith(CHECKPOINT_UNET) for k in keys):  # a UNet saved from a checkpoint, prefix and all
        state_dict = {k[len(CHECKPOINT_UNET):]: v for k, v in state_dict.items()}
        keys = list(state_dict)
    if any(".time_stack." in k for k in keys) and "input_blocks.0.0.weight" in state_dict:
        return state_dict  # already ComfyUI's (Stability's) layout
    if "input_blocks.0.0.weight" in state_dict or "conv_in.weight" in state_dict:
        raise SVDModelFileError(f"'{name}' is an image UNet (no temporal layers: SD1.5, SDXL or similar), not "
                                f"a video one. {PICK}")
    raise SVDModelFileError(f"'{name}' is not a UNet ({len(keys)} tensors, e.g. '{keys[0] if keys else ''}'). {PICK}")


def placeholders(state_dict):
    """Stand-ins of the same shapes and dtypes, one element each: enough for ComfyUI to detect and build."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state_dict.items()}


def copy_weights(diffusion_model, unet, name):
    """Copy every tensor into ComfyUI's model (which casts it to the dtype it chose); none may be missing."""
    targets = diffusion_model.state_dict()
    missing, unexpected = sorted(set(targets) - set(unet)), sorted(set(unet) - set(targets))
    if missing or unexpected:
        raise SVDModelFileError(
            f"'{name}' does not fit Stable Video Diffusion's UNet: {len(missing)} weights missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}). It is cut short or a "
            f"different model. {PICK}")
    copied, copied_bytes = [], 0
    with torch.no_grad():
        for key, target in targets.items():
            target.copy_(unet[key])
            copied.append(unet[key])
            copied_bytes += unet[key].numel() * unet[key].element_size()
            if copied_bytes > RELEASE_EVERY:
                release(copied)  # their file pages: the model holds these weights now
                copied, copied_bytes = [], 0
    release(copied)


def _comfy_unet_loader(state_dict):
    """ComfyUI's UNet-from-state-dict loader: load_diffusion_model_state_dict since mid-2024, before that
    load_unet_state_dict (the same job, one argument)."""
    loader = getattr(comfy.sd, "load_diffusion_model_state_dict", None) or comfy.sd.load_unet_state_dict
    return loader(state_dict)
