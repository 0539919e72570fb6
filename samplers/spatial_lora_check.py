"""The check that AnimateLCM samples as published: its motion module together with its spatial LCM LoRA.

AnimateLCM is two parts distilled apart (arXiv 2402.00769): the motion module and a spatial LoRA that
makes the image UNet few-step capable. The official code always merges the LoRA before sampling
(animatelcm_sd15/app.py, app-i2v.py: `convert_lcm_lora`). Without it a 4-step video comes from a UNet
that was never made few-step capable: blurry and washed out, and no error says why, since random or
real weights both still render. So the sampler warns, and still runs: a checkpoint may have the LoRA
merged in already, which nothing in the MODEL can show (the sampler's switch says so).
"""
from ..lora.apply import spatial_lora_of
from ..motion.injection import motion_module_on

SPATIAL_LORAS = {"AnimateLCM t2v": "AnimateLCM_sd15_t2v_lora.safetensors",
                 "AnimateLCM i2v": "AnimateLCM_sd15_i2v_lora.safetensors"}


def missing_spatial_lora(model):
    """The warning for a MODEL animated by an AnimateLCM module without its spatial LoRA, or None."""
    module = motion_module_on(model)
    if module is None or module[1] not in SPATIAL_LORAS or spatial_lora_of(model):
        return None
    name, family = module
    return (f"AnimateLCM without its spatial LoRA: '{name}' ({family}) samples a MODEL that has no AnimateLCM "
            f"spatial LoRA, so 4-step output will be blurry and washed out. Add 'Load AnimateLCM Spatial LoRA' "
            f"({SPATIAL_LORAS[family]}) between the checkpoint and the motion module, as every shipped workflow "
            f"does. If your checkpoint has it merged in already, turn off 'warn_without_spatial_lora' on the "
            f"AnimateLCM Sampler.")
