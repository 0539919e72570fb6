"""Tiny SD1.5-shaped MODELs (real ComfyUI ModelPatchers) for the fast tests.

The UNet has the SD1.5 layout (4 levels, attention on the first three, text width 768) at
channels 32/64/128/128, built by ComfyUI's own SD15 model class from a random state dict.
"""
import torch

from fixture_sd15 import random_tensor, unet_shapes

TINY_CHANNELS = (32, 64, 128, 128)


def tiny_unet_state_dict(seed=0, channels=TINY_CHANNELS):
    generator = torch.Generator().manual_seed(seed)
    return {k: random_tensor(k, shape, generator, torch.float32)
            for k, shape in unet_shapes(prefix="", ch=channels).items()}


def tiny_sd15_model(seed=0, channels=TINY_CHANNELS, dtype=torch.float32):
    import comfy.model_detection
    import comfy.model_patcher
    import comfy.supported_models
    state_dict = tiny_unet_state_dict(seed, channels)
    config = comfy.supported_models.SD15(comfy.model_detection.detect_unet_config(state_dict, ""))
    if dtype != torch.float32:
        config.set_inference_dtype(dtype, None)
    with torch.inference_mode(False):
        model = config.get_model({})
        model.diffusion_model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()})
    model.eval()
    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)
