"""Frame positions past the motion module's positional encoding, when the user asks for them.

A motion layer adds pe[frame] to its tokens; the encoding covers a fixed number of frames (64 for
AnimateLCM, 24/32 for AnimateDiff). Without context windows a longer video is refused, unless the
MODEL carries one of two explicit choices, set for the duration of a UNet call by the wrapper:
- extrapolate: frames past the end get the same sinusoid continued (AnimateDiff's encoding is the
  fixed sin/cos formula, defined for any position);
- interpolate: the N frames are spread over the positions the encoding covers, 0 ... P-1, with
  fractional positions linearly interpolated between rows (position interpolation).
"""
import contextvars
import math
from contextlib import contextmanager

import torch

MODES = ("extrapolate", "interpolate")
POSITIONS_KEY = "animatelcm_frame_positions"  # transformer_options key the choice travels under

_mode = contextvars.ContextVar("animatelcm_frame_positions", default=None)


@contextmanager
def frame_positions(mode):
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def sinusoidal_position_encoding(frames, channels, device=None, dtype=torch.float32):
    """AnimateDiff's fixed PositionalEncoding: sin on even, cos on odd channels, [1, frames, channels]."""
    position = torch.arange(frames, dtype=torch.float32, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32, device=device)
                         * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, frames, channels, device=device)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe.to(dtype)


def position_encoding(pe, frames):
    """pe [1, P, C] for `frames` frames: its first rows, or extended as the current mode says."""
    covered = pe.shape[1]
    mode = _mode.get()
    if frames <= covered or mode is None:
        return pe[:, :frames]
    if mode == "extrapolate":
        extra = sinusoidal_position_encoding(frames, pe.shape[2])[:, covered:]
        return torch.cat([pe, extra.to(pe)], dim=1)
    if mode == "interpolate":
        position = torch.linspace(0, covered - 1, frames, device=pe.device)
        low = position.floor().long()
        high = (low + 1).clamp(max=covered - 1)
        w = (position - low).to(pe.dtype).view(1, -1, 1)
        return pe[:, low] * (1 - w) + pe[:, high] * w
    raise ValueError(f"frame positions '{mode}' is not one of {', '.join(MODES)}")
