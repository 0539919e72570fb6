"""Style LoRAs and AnimateLCM's spatial LoRA on a MODEL/CLIP, through comfy.lora.

Patches go only to the image (spatial) layers and the text encoder: the keys are ComfyUI's own
map of the base model, so the motion module's layers (object patches of ours) are never among
them, whether the motion module is applied before or after the LoRA.
"""
import logging
from dataclasses import dataclass

import comfy.lora

from .errors import LoRAMatchError
from .formats import SDXL_TEXT_WIDTH, describe, lora_modules, module_of, normalise, sdxl_signs

log = logging.getLogger(__name__)

# The official app merges the spatial LCM LoRA as `0.8 · (1/8) · up@down` per layer, ignoring any
# stored alpha (animatelcm/utils/lcm_utils.py: convert_lcm_lora with the 0.8 slider default).
ANIMATELCM_LORA_SCALE = 0.8 / 8
# model_options key under which a MODEL carries the name of the AnimateLCM spatial LoRA merged into it
# (read by the sampler's check; model_options travel with every clone, and nothing global is kept)
SPATIAL_LORA_KEY = "animatelcm_spatial_lora"


@dataclass
class LoRAReport:
    name: str
    in_file: int
    image_layers: int
    text_layers: int

    def __str__(self):
        patched = self.image_layers + self.text_layers
        text = (f"{self.name}: patched {patched} of {self.in_file} layers in the file "
                f"({self.image_layers} image, {self.text_layers} text encoder)")
        return text if patched == self.in_file else text + f"; {self.in_file - patched} matched nothing in this model"


def _patches(model, clip, lora, modules):
    key_map, shapes = {}, {}
    if model is not None:
        key_map = comfy.lora.model_lora_keys_unet(model.model, key_map)
        shapes.update((k, v.shape) for k, v in model.model.state_dict().items())
    if clip is not None:
        key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
        shapes.update((k, v.shape) for k, v in clip.cond_stage_model.state_dict().items())
    # a layer of the same name but another size (an SDXL LoRA on SD1.5) is no match: leave it out
    # here rather than let it fail while the model loads
    misfits = {m for m in modules if m in key_map and not _fits(lora, m, shapes.get(_target(key_map[m])))}
    patches = comfy.lora.load_lora({k: v for k, v in lora.items() if module_of(k) not in misfits}, key_map)
    return {k: v for k, v in patches.items() if "motion_module" not in str(k)}, key_map


def _target(value):
    return value if isinstance(value, str) else value[0]


def _fits(lora, module, shape):
    up, down = lora.get(f"{module}.lora_up.weight"), lora.get(f"{module}.lora_down.weight")
    if up is None or down is None or shape is None:
        return True  # other layouts (LoHa, LoKr, ...): ComfyUI checks them itself
    return up.shape[0] == shape[0] and down[0].numel() == shape[1:].numel()


def apply_lora(model, clip, lora, name, strength_model, strength_clip, layer_scale=None):
    """(model clone, clip clone, LoRAReport). `layer_scale(module info)`, when given, multiplies
    strength_model per layer (ComfyUI's own add_patches then applies its alpha/rank on top)."""
    lora = normalise(lora)
    _refuse_other_family(lora, name, model)
    modules = lora_modules(lora)
    patches, key_map = _patches(model, clip, lora, modules)
    new_model = model.clone() if model is not None else None
    new_clip = clip.clone() if clip is not None else None
    image, text = set(), set()
    if new_model is not None:
        if layer_scale is None:
            image.update(new_model.add_patches(patches, strength_model))
        else:
            model_key_of = {(v if isinstance(v, str) else v[0]): k for k, v in key_map.items() if k in modules}
            for key, patch in patches.items():
                module = model_key_of.get(key)
                factor = layer_scale(modules[module]) if module else 1.0
                image.update(new_model.add_patches({key: patch}, strength_model * factor))
    if new_clip is not None:
        text.update(new_clip.add_patches(patches, strength_clip))
    report = LoRAReport(name, len(modules), len(image), len(text))
    if not image and not text:
        raise LoRAMatchError(f"'{name}' patched nothing: it is {describe(lora)}.")
    log.info("%s", report)
    return new_model, new_clip, report


def _refuse_other_family(lora, name, model):
    """An SDXL LoRA is refused whole, before anything is patched: half of it would fit by chance."""
    signs = sdxl_signs(lora)
    text_width = model.model.model_config.unet_config.get("context_dim") if model is not None else None
    if signs and text_width != SDXL_TEXT_WIDTH:
        raise LoRAMatchError(f"'{name}' is an SDXL LoRA ({'; '.join(signs)}), and this MODEL is SD1.5: a part "
                             "of it would fit by chance and the rest be lost. Pick an SD1.5 LoRA (the file's "
                             "page says which base model it was trained on).")


def apply_spatial_lora(model, lora, name, strength):
    """AnimateLCM's spatial LoRA at the official scale on a clone of `model`, marked as carrying it."""
    new_model, _, report = apply_lora(model, None, lora, name, strength, 0.0, animatelcm_layer_scale)
    if strength:
        new_model.model_options[SPATIAL_LORA_KEY] = name
    return new_model, report


def spatial_lora_of(model):
    """The AnimateLCM spatial LoRA merged into this MODEL by 'Load AnimateLCM Spatial LoRA', or None."""
    return model.model_options.get(SPATIAL_LORA_KEY)


def animatelcm_layer_scale(module):
    """The factor that turns ComfyUI's `strength · alpha/rank · up@down` (or `strength · up@down` when the
    file has no alpha) into the official `strength · 0.8 · (1/8) · up@down`."""
    if module["alpha"] is None or not module["rank"]:
        return ANIMATELCM_LORA_SCALE
    return ANIMATELCM_LORA_SCALE * module["rank"] / module["alpha"]
