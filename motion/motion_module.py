"""A loaded motion module (the MOTION_MODEL that flows between nodes) and the layers built from it."""
import os
from dataclasses import dataclass

import torch

from ..weights.files import read_sidecar_config, read_state_dict
from .errors import MotionModuleError
from .formats import MotionFormat, normalise, position_of
from .temporal_layer import MotionLayer


@dataclass
class MotionModule:
    name: str
    format: MotionFormat
    weights: dict  # original AnimateDiff key names, as read from the file (no copy made)
    image_encoder: dict = None  # AnimateLCM-I2V's `img_encoder.*`, kept for image-to-video

    @property
    def max_frames(self):
        return self.format.max_frames

    def positions(self):
        """{position: channels}, e.g. {"down_blocks.0.motion_modules.0": 320, ...}."""
        return {position_of(k): v.shape[1] for k, v in self.weights.items()
                if k.endswith(".temporal_transformer.proj_in.weight")}

    def build_layers(self, dtype):
        """One MotionLayer per position, holding the file's tensors (converted to `dtype` only if needed)."""
        layers = {}
        for position, channels in self.positions().items():
            prefix = position + "."
            weights = {k[len(prefix):]: v.to(dtype) for k, v in self.weights.items() if k.startswith(prefix)}
            with torch.device("meta"):  # no throwaway random init: the file's tensors are assigned
                layer = MotionLayer(channels, self.max_frames)
            try:
                layer.load_state_dict(weights, strict=True, assign=True)
            except RuntimeError as error:
                # torch puts the detail (which tensor, which shapes) on the lines after its first
                lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                detail = " ".join(lines[1:3]) or lines[0]
                if len(lines) > 3:
                    detail += f" (and {len(lines) - 3} more like it)"
                raise MotionModuleError(f"'{self.name}' is incomplete or not an AnimateDiff-style module at "
                                        f"{position}: {detail} Download the file again.") from error
            layers[position] = layer.eval()
        return layers

    def __repr__(self):
        return f"MotionModule({self.name!r}, {self.format.family}, up to {self.max_frames} frames)"


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


def load_motion_module(path):
    name = os.path.basename(path)
    state_dict = read_state_dict(path)
    config = read_sidecar_config(path) if name.startswith("diffusion_pytorch_model") else {}
    motion_format, weights, image_encoder = normalise(state_dict, name, config)
    module = MotionModule(name, motion_format, weights, image_encoder)
    if not module.positions():
        raise MotionModuleError(f"'{name}' has motion_modules keys but no temporal transformer layers.")
    _check_positions(module)
    module.build_layers(module.weights[next(iter(module.weights))].dtype)  # fail at load on an incomplete file
    return module
