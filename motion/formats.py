"""Which motion module a state dict is, and its keys in one (the original AnimateDiff) naming.

Recognised (keys as in the released files):
| family            | recognised by                                     | frames |
| AnimateLCM t2v    | no positional-encoding keys (or a 64-frame one)   | 64     |
| AnimateLCM i2v    | as t2v, plus `img_encoder.*`                      | 64     |
| AnimateDiff v1    | no mid block, pos_encoder.pe [1, 24, C]           | 24     |
| AnimateDiff v2    | mid block, pe [1, 32, C]                          | 32     |
| AnimateDiff v3    | no mid block, pe [1, 32, C]                       | 32     |
| diffusers MotionAdapter | `motion_modules.J.transformer_blocks...attn1` | config |
| AnimateDiff-Lightning | v2's layout (either naming), and its name or bytes (lightning.py) | 32 |
Everything else is refused with what the file appears to be.
"""
import re
from dataclasses import dataclass

from .errors import MotionModuleError

POSITION = re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.\d+")
ANIMATELCM_FRAMES = 64


@dataclass(frozen=True)
class MotionFormat:
    family: str
    max_frames: int
    has_mid_block: bool
    converted_from_diffusers: bool = False
    distilled_steps: int = None  # the step count a distilled module was made for (AnimateDiff-Lightning's 1/2/4/8)


def position_of(key):
    match = POSITION.match(key)
    return match.group(0) if match else None


def is_image_checkpoint(keys):
    return any(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner."))
               for k in keys)


def is_lora(keys):
    """Any LoRA naming: kohya/diffusers `lora_up/down`, PEFT `lora_A/B`, motion LoRAs' `_lora.up`, LyCORIS."""
    return any(re.search(r"lora_(up|down|A|B)\b|_?lora\.(up|down)\b|\.lora\.|hada_w|lokr_w", k) for k in keys)


def _refuse_other_files(keys, name):
    if is_image_checkpoint(keys):
        raise MotionModuleError(f"'{name}' is an image model checkpoint, not a motion module. Put it in "
                                "models/checkpoints and load it with Load Checkpoint.")
    if is_lora(keys):
        if any("motion_modules" in k for k in keys):
            raise MotionModuleError(f"'{name}' is a motion LoRA, not a motion module: it belongs in "
                                    "models/animatediff_motion_lora.")
        raise MotionModuleError(f"'{name}' is a LoRA, not a motion module: put it in models/loras and use "
                                "the style-LoRA loader.")
    if any("temporal_attentions" in k for k in keys):
        raise MotionModuleError(f"'{name}' is a HotshotXL (SDXL) motion module; this pack animates SD1.5. "
                                "Pick an SD1.5 motion module such as AnimateLCM_sd15_t2v.ckpt.")
    if not any("motion_modules" in k for k in keys):
        sample = ", ".join(sorted(keys)[:3])
        raise MotionModuleError(f"'{name}' is not a motion module: it has no motion_modules weights "
                                f"(its keys begin {sample}). Pick an AnimateLCM or AnimateDiff SD1.5 module.")
    down_levels = {int(m.group(1)) for k in keys if (m := re.match(r"down_blocks\.(\d+)\.motion_modules", k))}
    if down_levels and max(down_levels) == 2:
        raise MotionModuleError(f"'{name}' is an SDXL motion module (AnimateDiff-SDXL: three UNet levels); "
                                "this pack animates SD1.5. Pick an SD1.5 module such as AnimateLCM_sd15_t2v.ckpt.")


_DIFFUSERS_NAMES = {"attn1": "attention_blocks.0", "attn2": "attention_blocks.1", "norm1": "norms.0",
                    "norm2": "norms.1", "norm3": "ff_norm", "pos_embed": "pos_encoder"}


def _from_diffusers(state_dict):
    """diffusers MotionAdapter names → the original ones (the inverse of diffusers' converter).

    A saved MotionAdapter holds one position table per transformer block (`transformer_blocks.N.pos_embed.pe`),
    which diffusers' BasicTransformerBlock adds before both attentions: the original layout's two tables."""
    out = {}
    for key, value in state_dict.items():
        position = position_of(key)
        if position is None:
            continue
        rest = ".".join(_DIFFUSERS_NAMES.get(part, part) for part in key[len(position) + 1:].split("."))
        block_table = re.fullmatch(r"(transformer_blocks\.\d+)\.pos_encoder\.pe", rest)
        if block_table:
            for attention in range(2):
                out[f"{position}.temporal_transformer.{block_table.group(1)}.attention_blocks.{attention}.pos_encoder.pe"] = value
        else:
            out[f"{position}.temporal_transformer.{rest}"] = value
    return out


def normalise(state_dict, name, diffusers_config=None):
    """(MotionFormat, motion weights in original naming, image-encoder weights).

    Files that store a positional encoding (AnimateDiff v1/v2/v3) keep it, as `...pos_encoder.pe`;
    AnimateLCM stores none and its layers use their own fixed sinusoid (temporal_layer.py).
    """
    keys = list(state_dict)
    _refuse_other_files(keys, name)
    image_encoder = {k[len("img_encoder."):]: v for k, v in state_dict.items() if k.startswith("img_encoder.")}
    from_diffusers = not any(".temporal_transformer." in k for k in keys)
    if from_diffusers:
        motion = _from_diffusers(state_dict)
    else:
        motion = {k: v for k, v in state_dict.items() if position_of(k)}
    pe_keys = [k for k in motion if k.endswith((".pos_encoder.pe", ".pos_encoder.pos_encoding"))]
    has_mid = any(k.startswith("mid_block.") for k in motion)
    if pe_keys:
        frames = motion[pe_keys[0]].shape[1]
    elif from_diffusers and diffusers_config:
        frames = int(diffusers_config.get("motion_max_seq_length", 32))
    else:
        frames = ANIMATELCM_FRAMES
    if frames < 1:
        where = f"its {pe_keys[0]} has shape {list(motion[pe_keys[0]].shape)}" if pe_keys else \
            "its config.json sets motion_max_seq_length to 0"
        raise MotionModuleError(f"'{name}' covers 0 frames ({where}): the file is damaged. Download it again.")
    if from_diffusers:
        family = "AnimateDiff (diffusers MotionAdapter)"
    elif frames == ANIMATELCM_FRAMES:
        family = "AnimateLCM i2v" if image_encoder else "AnimateLCM t2v"
    elif frames == 24:
        family = "AnimateDiff v1"
    elif frames == 32:
        family = "AnimateDiff v2" if has_mid else "AnimateDiff v3"
    else:
        family = f"AnimateDiff-compatible ({frames} frames)"

    for key in pe_keys:  # one name for a stored encoding, whichever the file used; none stored: the layer's own
        motion[key.rsplit(".", 1)[0] + ".pe"] = motion.pop(key)
    return MotionFormat(family, frames, has_mid, from_diffusers), motion, image_encoder or None
