"""Random-weight motion-module files in the real key layouts (motion/formats.py, docs/nodes.md's Load Motion Module): the generators are the
self-check's (selfcheck/models.py), the file writers are here."""
import torch
from safetensors.torch import save_file

from fixture_selfcheck import models

SD15_CHANNELS, FAMILIES, LORA_PROJECTIONS = models.SD15_CHANNELS, models.FAMILIES, models.LORA_PROJECTIONS
_sinusoid, layer_weights, positions = models.position_table, models.layer_weights, models.positions
motion_state_dict, to_diffusers = models.motion_state_dict, models.to_diffusers
motion_lora_state_dict, motion_lora_target = models.motion_lora_state_dict, models.motion_lora_target
# AnimateLCM-I2V's `img_encoder.*` at any width: the renderer's stand-in generator (stand_ins/random_weights.py)
image_encoder_weights = models.image_encoder_weights


def save_pickle(sd, path):
    torch.save(sd, path)


def save_safetensors(sd, path):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
