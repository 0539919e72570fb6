"""AnimateLCM-I2V's image encoder: features of the start image for the UNet's four down levels.

The official `Adapter(cin=4, channels=[320, 640, 1280, 1280], nums_rb=2, ksize=1, sk=True,
use_conv=False)` (G-U-N/AnimateLCM, animatelcm_sd15/animatelcm/models/adapter.py and unet.py):
    x = conv_in(reference latent) + motion_scale · pe[frame]     conv_in 3×3 4→320; pe: sinusoid, d = 320
    per level i, two ResnetBlocks:                                 the first of levels 1-3 halves the size
        x = avg_pool_2×2(replicate_pad(x))       (first block of levels 1-3 only; pads odd sizes to even)
        x = in_conv(x)                            1×1, only where the channels change (320→640, 640→1280)
        x = x + block2(ReLU(block1(x)))           block1 3×3, block2 1×1
    feature i = x after level i
motion_scale is the only place the frame index enters: at 0 every frame gets the same features
(a still video). Parameter names are the file's (`img_encoder.` stripped), so it loads as it is.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .errors import MotionModuleError
from .frame_positions import sinusoidal_position_encoding

BLOCKS_PER_LEVEL = 2


class ResnetBlock(nn.Module):
    def __init__(self, in_channels, out_channels, downsample):
        super().__init__()
        self.downsample = downsample
        self.in_conv = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.block1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.block2 = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x):
        if self.downsample:
            height, width = x.shape[-2:]
            x = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
            x = F.avg_pool2d(x, 2)
        if self.in_conv is not None:
            x = self.in_conv(x)
        return x + self.block2(F.relu(self.block1(x)))


class ImageEncoder(nn.Module):
    def __init__(self, channels=(320, 640, 1280, 1280), latent_channels=4):
        super().__init__()
        self.channels = tuple(channels)
        self.conv_in = nn.Conv2d(latent_channels, channels[0], 3, padding=1)
        self.body = nn.ModuleList(
            ResnetBlock(channels[i - 1] if i and not j else c, c, downsample=bool(i and not j))
            for i, c in enumerate(channels) for j in range(BLOCKS_PER_LEVEL))

    def forward(self, reference, motion_scale, positions=None):
        """reference: [frames, 4, h, w] (scaled latents, one per frame) → one feature per level, [frames, C_i, h_i, w_i].

        positions: the frames' places in the video (a window of it); None = 0, 1, ... frames - 1. Every frame
        is encoded on its own (no layer mixes frames), so a window's features are the video's at its frames."""
        frames = reference.shape[0]
        pe = sinusoidal_position_encoding(frames if positions is None else max(positions) + 1, self.channels[0])[0]
        pe = (pe if positions is None else pe[list(positions)]).to(reference)  # the sinusoid's rows, as official
        x = self.conv_in(reference) + motion_scale * pe[:, :, None, None]
        features = []
        for level in range(len(self.channels)):
            for block in self.body[level * BLOCKS_PER_LEVEL:(level + 1) * BLOCKS_PER_LEVEL]:
                x = block(x)
            features.append(x)
        return features


def channels_of(weights):
    """The encoder's per-level channels, read from its block1 weights (body.0, .2, .4, .6)."""
    channels, index = [], 0
    while f"body.{index}.block1.weight" in weights:
        channels.append(weights[f"body.{index}.block1.weight"].shape[0])
        index += BLOCKS_PER_LEVEL
    return channels


def build_image_encoder(weights, dtype, name):
    """An ImageEncoder holding the file's tensors (converted to `dtype` only if needed): no second copy."""
    channels = channels_of(weights)
    if not channels or "conv_in.weight" not in weights:
        raise MotionModuleError(f"'{name}' has img_encoder weights but not AnimateLCM-I2V's encoder layout "
                                "(conv_in, body.N.block1/block2). Pick AnimateLCM_sd15_i2v.ckpt.")
    with torch.device("meta"):  # no throwaway random init: the file's tensors are assigned
        encoder = ImageEncoder(channels, weights["conv_in.weight"].shape[1])
    try:
        encoder.load_state_dict({k: v.to(dtype) for k, v in weights.items()}, strict=True, assign=True)
    except RuntimeError as error:
        raise MotionModuleError(f"'{name}': its image encoder does not match AnimateLCM-I2V's: "
                                f"{str(error).splitlines()[0]}") from error
    return encoder.eval()

