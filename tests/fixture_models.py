"""Tiny SD1.5-shaped MODELs (real ComfyUI ModelPatchers) for the fast tests.

The UNet has the SD1.5 layout (4 levels, attention on the first three, text width 768) at
channels 32/64/128/128, built by ComfyUI's own SD15 model class from a random state dict.
"""
import torch

from fixture_sd15 import random_tensor, unet_shapes
from fixture_selfcheck import models  # the tiny models are the self-check's (selfcheck/models.py)

TINY_CHANNELS, tiny_unet_state_dict, tiny_sd15_model = models.TINY_CHANNELS, models.tiny_unet_state_dict, models.tiny_sd15_model


class RunsCode:
    """A pickle payload that writes a marker file when unpickled: proves a loader did not run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# The full-size end-to-end graphs render 32×32 frames in 2 steps: SD1.5's whole architecture runs (ComfyUI
# matches the 1×1 bottom level's upsampling to its skip connection) and the few-step sampler adds noise
# between steps, while a full-size UNet call costs seconds on a CPU at any size this small.
E2E_SIZE = 32
E2E_STEPS = 2


def rendered_side(workflow, size):
    """The side of the video a shipped workflow (UI format) renders when its latents are `size` px: each Upscale
    Latent By on the way (a hi-res second pass) scales the latent's side, rounded as ComfyUI rounds it."""
    side = size // 8
    for node in workflow["nodes"]:
        if node["type"] == "LatentUpscaleBy":
            side = round(side * node["widgets_values"][1])
    return side * 8


def core_t2i_prompt(checkpoint, seed, frames=4, size=E2E_SIZE, cfg=1.5):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": frames}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": E2E_STEPS, "cfg": cfg, "sampler_name": "lcm", "scheduler": "sgm_uniform",
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


# An SD1.5 checkpoint ComfyUI's own loader detects as SD1.5 (model_channels 320, text width 768),
# but with 320 channels on every level instead of 320/640/1280/1280 (a quarter of the UNet) and
# no VAE weights (the loader builds an untrained VAE): loads in seconds, for graphs run through
# the executor by the quick tests. Its CLIP-L weights are real-shaped random ones.
NARROW_CHANNELS = (320, 320, 320, 320)
NARROW_CHECKPOINT = "sd15_narrow_random_v1.safetensors"


def write_narrow_sd15_checkpoint(path, seed=0):
    from pathlib import Path

    from safetensors.torch import save_file

    from fixture_sd15 import clip_shapes
    generator = torch.Generator().manual_seed(seed)
    shapes = {**unet_shapes(ch=NARROW_CHANNELS), **clip_shapes()}
    tensors = {k: random_tensor(k, shape, generator, torch.float16) for k, shape in shapes.items()}
    tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed
    save_file(tensors, str(partial), metadata={"format": "pt"})
    partial.replace(path)
    return path
