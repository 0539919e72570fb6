"""Motion LoRAs (AnimateDiff v2's camera moves: zoom, pan, tilt, roll) merged into a motion module.

A motion LoRA holds a low-rank pair for each projection of the two temporal self-attentions of
every motion layer:
    <position>.temporal_transformer.transformer_blocks.B.attention_blocks.A.processor.<proj>_lora.{down,up}.weight
for proj in to_q, to_k, to_v, to_out. AnimateDiff merges each pair onto
    <position>.temporal_transformer.transformer_blocks.B.attention_blocks.A.<proj>.weight   (to_out: to_out.0)
as W += strength · up @ down, with no alpha and no 1/rank (AnimateDiff's
convert_motion_lora_ckpt_to_diffusers). The merge works on the module's `weights` in their original
names, so it holds however the layers are later built from them. It makes new tensors for the
merged weights only: every other tensor (possibly memory-mapped from the file) is shared with the
input module, which is left as it was.
"""
import dataclasses
import logging
import os
import re

import torch

from ..weights.files import read_state_dict
from .errors import MotionLoRAError
from .formats import is_image_checkpoint, is_lora, position_of

log = logging.getLogger(__name__)

LORA_KEY = re.compile(r"^(?P<attention>.+\.attention_blocks\.\d+)\.processor\."
                      r"(?P<proj>to_q|to_k|to_v|to_out)_lora\.down\.weight$")


@dataclasses.dataclass(frozen=True)
class MotionLoRA:
    name: str
    pairs: dict  # target weight key (the module's naming) -> (up, down)

    @property
    def has_mid_block(self):
        return any(key.startswith("mid_block.") for key in self.pairs)


def _what_else_it_is(keys, name):
    """The refusal for a file without motion-LoRA pairs, saying what the file appears to be."""
    if is_image_checkpoint(keys):
        return (f"'{name}' is an image model checkpoint, not a motion LoRA. Put it in models/checkpoints and "
                "load it with Load Checkpoint.")
    motion = any("motion_modules" in k for k in keys)
    if motion and not is_lora(keys):
        return (f"'{name}' is a motion module, not a motion LoRA. Put it in models/animatediff_models and load it "
                "with Load Motion Module.")
    if is_lora(keys) and not motion:
        return (f"'{name}' is a style LoRA (it changes image layers, not motion layers). Put it in models/loras and "
                "use Load Style LoRA.")
    sample = ", ".join(sorted(keys)[:3])
    return (f"'{name}' is not an AnimateDiff motion LoRA: it has no "
            "'...attention_blocks.N.processor.to_q_lora.down.weight' weights (its keys begin "
            f"{sample}). Motion LoRAs such as v2_lora_ZoomIn.ckpt go in models/animatediff_motion_lora.")


def motion_lora_from_state_dict(state_dict, name):
    pairs = {}
    for key, down in state_dict.items():
        match = LORA_KEY.match(key)
        if match is None or position_of(key) is None:
            continue
        up = state_dict.get(key[: -len("down.weight")] + "up.weight")
        if up is None or up.ndim != 2 or down.ndim != 2 or up.shape[1] != down.shape[0]:
            raise MotionLoRAError(f"'{name}' is damaged: the pair for {key[: -len('.down.weight')]} is missing its "
                                  "up weight or the two do not fit together. Download the file again.")
        proj = "to_out.0" if match["proj"] == "to_out" else match["proj"]
        pairs[f"{match['attention']}.{proj}.weight"] = (up, down)
    if not pairs:
        raise MotionLoRAError(_what_else_it_is(list(state_dict), name))
    return MotionLoRA(name, pairs)


def load_motion_lora(path):
    """A motion LoRA file (.ckpt read weights-only, or .safetensors; a `state_dict` wrapper is unwrapped)."""
    name = os.path.basename(path)
    return motion_lora_from_state_dict(read_state_dict(path), name)


def apply_motion_lora(module, lora, strength):
    """(a new MotionModule with the LoRA merged at `strength`, a one-line report for the user)."""
    weights = dict(module.weights)  # a new dict sharing every tensor; merged keys get new tensors below
    left_out = []
    for target, (up, down) in lora.pairs.items():
        base = weights.get(target)
        if base is None:
            if target.startswith("mid_block.") and not module.format.has_mid_block:
                left_out.append(target)
                continue
            raise MotionLoRAError(
                f"'{lora.name}' does not fit the motion module '{module.name}' ({module.format.family}): it has "
                f"weights for {target.rsplit('.', 2)[0]}, which the module lacks. Use a motion LoRA made for an "
                "SD1.5 AnimateDiff v2 / AnimateLCM module.")
        if tuple(base.shape) != (up.shape[0], down.shape[1]):
            raise MotionLoRAError(
                f"'{lora.name}' does not fit the motion module '{module.name}' ({module.format.family}): at {target} "
                f"it holds {up.shape[0]}×{down.shape[1]} weights where the module has {tuple(base.shape)}. It was "
                "made for another model (SDXL?); use an SD1.5 motion LoRA.")
        if strength != 0:  # 0 keeps the module's own tensors: exactly the module without the LoRA
            weights[target] = torch.addmm(base.float(), up.float(), down.float(), alpha=strength).to(base.dtype)
    merged = len(lora.pairs) - len(left_out)
    report = (f"{lora.name} at strength {strength:g}: {merged} attention weights of {module.name} "
              f"({module.format.family}) {'merged' if strength else 'left as they are (strength 0)'}")
    if left_out:
        report += (f"; the LoRA's {len(left_out)} mid-block weights were left out: this module has no mid block "
                   "(the LoRA was made for AnimateDiff v2, whose layout AnimateLCM shares)")
        log.warning("motion LoRA %s: %s", lora.name, report)
    else:
        log.info("motion LoRA %s", report)
    return _module_with(module, name=f"{module.name} + {lora.name}", weights=weights), report


def _module_with(module, **changes):
    """A new MotionModule like `module` with `changes`; private fields (caches of layers built from the
    old weights) start empty instead of being shared."""
    fields = {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
              if f.init and not f.name.startswith("_")}
    return type(module)(**{**fields, **changes})
