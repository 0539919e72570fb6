"""A loaded motion module (the MOTION_MODEL that flows between nodes) and the layers built from it.

Memory: `weights` is the file's own tensors (memory-mapped, original key names): the single
source every layer is built from, never changed. The layers' tensors are made once per dtype and
shared by every MODEL the module is applied to (each MODEL gets its own layer objects, so
ComfyUI can move one MODEL to the GPU and back without touching another's). Where building the
layers copied a tensor (a dtype conversion, or the fused q/k/v), the file's pages of that tensor
are given back to the OS at once, so the process holds one copy of the module, in the dtype the
UNet computes in. Where the dtypes match, the layers use the mapped tensors themselves.
"""
import os
from dataclasses import dataclass, field

import torch

from ..weights.files import read_sidecar_config, read_state_dict
from ..weights.mapped_pages import release
from .errors import MotionModuleError
from .formats import MotionFormat, normalise, position_of
from .lightning import recognise as recognise_lightning
from .temporal_layer import MotionLayer

QKV = ("to_q", "to_k", "to_v")


@dataclass(eq=False)
class MotionModule:
    name: str
    format: MotionFormat
    weights: dict  # original AnimateDiff key names, as read from the file (no copy made)
    image_encoder: dict = None  # AnimateLCM-I2V's `img_encoder.*`, kept for image-to-video
    # dtype → {position: layer state dict}; not an init field, so dataclasses.replace (a LoRA-merged copy) starts empty
    _layer_tensors: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def max_frames(self):
        return self.format.max_frames

    def positions(self):
        """{position: channels}, e.g. {"down_blocks.0.motion_modules.0": 320, ...}."""
        return {position_of(k): v.shape[1] for k, v in self.weights.items()
                if k.endswith(".temporal_transformer.proj_in.weight")}

    def layer_tensors(self, dtype):
        """{position: the layer's state dict in `dtype`}, converted once per dtype, shared by all MODELs."""
        if dtype not in self._layer_tensors:
            self._layer_tensors[dtype] = {position: _layer_state_dict(self.weights, position + ".", dtype)
                                          for position in self.positions()}
        return self._layer_tensors[dtype]

    def build_layers(self, dtype):
        """One new MotionLayer per position, holding this module's tensors in `dtype` (no copy of them)."""
        layers = {}
        for position, channels in self.positions().items():
            tensors = self.layer_tensors(dtype)[position]
            stored_pe = "temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe" in tensors
            with torch.device("meta"):  # no throwaway random init: the tensors are assigned
                layer = MotionLayer(channels, self.max_frames, stored_pe)
            try:
                layer.load_state_dict(tensors, strict=True, assign=True)
            except RuntimeError as error:
                # torch puts the detail (which tensor, which shapes) on the lines after its first
                lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                detail = " ".join(lines[1:3]) or lines[0]
                if len(lines) > 3:
                    detail += f" (and {len(lines) - 3} more like it)"
                raise MotionModuleError(f"'{self.name}' is incomplete or not an AnimateDiff-style module at "
                                        f"{position}: {detail} Download the file again.") from error
            layers[position] = layer.eval().requires_grad_(False)
        return layers

    def __repr__(self):
        return f"MotionModule({self.name!r}, {self.description()})"

    def description(self):
        """What the module is, in a log line: its family, the steps it was distilled for, its frame limit."""
        steps = self.format.distilled_steps
        distilled = f", distilled for {steps} step{'s' * (steps != 1)}" if steps else ""
        return f"{self.format.family}{distilled}, up to {self.max_frames} frames"


# An SD1.5 motion module has a layer after each of the 2 resnet pairs of the 4 down levels and each of
# the 3 of the 4 up levels; the mid-block layer is optional (v1 and v3 have none).
SD15_POSITIONS = ([f"down_blocks.{i}.motion_modules.{j}" for i in range(4) for j in range(2)]
                  + [f"up_blocks.{i}.motion_modules.{j}" for i in range(4) for j in range(3)])
MID_POSITION = "mid_block.motion_modules.0"


def _check_positions(module):
    positions = set(module.positions())
    unknown = sorted(positions - set(SD15_POSITIONS) - {MID_POSITION})
    if unknown:
        raise MotionModuleError(f"'{module.name}' has layers at {', '.join(unknown[:3])}, where an SD1.5 UNet has "
                                "no block: it is not an SD1.5 motion module. Pick an AnimateLCM or AnimateDiff "
                                "SD1.5 module.")
    missing = [p for p in SD15_POSITIONS if p not in positions]
    if missing:
        raise MotionModuleError(
            f"'{module.name}' is incomplete: it has layers at {len(positions)} of the {len(SD15_POSITIONS)} "
            f"positions every SD1.5 motion module fills (missing {', '.join(missing[:3])}"
            f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}). Download the file again.")


def _layer_state_dict(weights, prefix, dtype):
    """One position's weights in the layer's naming and `dtype`; the file pages of every copied tensor released."""
    tensors, copied = {}, []
    for key, value in weights.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.rsplit(".", 2)[-2] in QKV:
            continue  # fused below
        tensors[name] = value.to(dtype)
        if tensors[name] is not value:
            copied.append(value)
    attentions = {k[len(prefix):].rsplit(".", 2)[0] for k in weights
                  if k.startswith(prefix) and k.endswith(".to_q.weight")}
    for attention in attentions:
        parts = [weights.get(f"{prefix}{attention}.{proj}.weight") for proj in QKV]
        if any(part is None for part in parts):
            raise MotionModuleError(f"'{prefix}{attention}' lacks one of to_q/to_k/to_v: the file is incomplete. "
                                    "Download it again.")
        # one [3C, C] product instead of three; the file's to_q/to_k/to_v stay the source (motion LoRAs patch those)
        tensors[f"{attention}.to_qkv.weight"] = torch.cat([part.to(dtype) for part in parts])
        copied.extend(parts)
    release(copied)
    return tensors


def load_motion_module(path):
    name = os.path.basename(path)
    state_dict = read_state_dict(path)
    config = read_sidecar_config(path) if name.startswith("diffusion_pytorch_model") else {}
    motion_format, weights, image_encoder = normalise(state_dict, name, config)
    module = MotionModule(name, recognise_lightning(path, motion_format, image_encoder), weights, image_encoder)
    if not module.positions():
        raise MotionModuleError(f"'{name}' has motion_modules keys but no temporal transformer layers.")
    _check_positions(module)
    _check_complete(module)
    return module


def _check_complete(module):
    """Fail at load, not at the first step, on a file that lacks a layer's weights (reads no tensor data)."""
    for position, channels in module.positions().items():
        prefix = position + "."
        found = {k[len(prefix):]: tuple(v.shape) for k, v in module.weights.items() if k.startswith(prefix)}
        stored_pe = any(n.endswith(".pos_encoder.pe") for n in found)
        with torch.device("meta"):
            layer = MotionLayer(channels, module.max_frames, stored_pe)
        expected = {}
        for name, tensor in layer.state_dict().items():
            if name.endswith(".to_qkv.weight"):  # the file holds its three parts
                expected.update({f"{name[:-len('to_qkv.weight')]}{proj}.weight": (channels, channels) for proj in QKV})
            elif not name.endswith(".pos_encoder.pe"):
                expected[name] = tuple(tensor.shape)
        found = {k: v for k, v in found.items() if not k.endswith(".pos_encoder.pe")}
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        if missing or unexpected or wrong:
            detail = (f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
                      if unexpected else f"{wrong[0]} has shape {list(found[wrong[0]])}, not {list(expected[wrong[0]])}")
            raise MotionModuleError(f"'{module.name}' is incomplete or not an AnimateDiff-style module at "
                                    f"{position}: {detail}.")
