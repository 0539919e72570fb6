"""The measures of one frame pair (t-1, t), on 8-bit RGB frames ([H, W, 3] uint8).

- Temporal flickering, VBench's `temporal_flickering` (Huang et al., "VBench", CVPR 2024;
  vbench/temporal_flickering.py): the mean absolute difference of the two frames' 8-bit values
  over every pixel and channel, scored (255 - MAE) / 255. 1 is a still pair; VBench's score of a
  video, (255 - mean MAE) / 255, is the mean of its pairs' scores.
- Warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, §5 and
  their evaluate_WarpError.py): frame t-1 warped onto frame t along the optical flow, the squared
  difference (RGB in 0-1) averaged over the pixels the flow can vouch for. Pixels are left out
  where the forward-backward check fails, on motion boundaries (both tests from Ruder et al.,
  "Artistic style transfer for videos", 2016, with their thresholds, as Lai et al. use them), and
  where the flow points outside frame t-1. Lai et al. warp t onto t-1; the other direction is
  the same measure seen from frame t, which is the frame the curve names.
- Motion: the mean length of the optical flow from t-1 to t, in pixels.

The flow is OpenCV's DIS (Kroeger et al., ECCV 2016) at its MEDIUM preset on the frames' grey
values: within 0.03 px of a known sub-pixel translation at 64² and 512², about 12 ms a flow at
512² on one core.
"""
from dataclasses import dataclass

import cv2
import numpy as np

# An error under half an 8-bit step squared is none at all: 8-bit frames cannot show it. It keeps the
# seam ratios finite (and 1 between two still parts) where nothing changes.
NO_ERROR = (0.5 / 255) ** 2


@dataclass(frozen=True)
class PairMeasures:
    flicker: float  # VBench's score of the pair, (255 - MAE) / 255
    warping_error: float  # mean squared RGB difference (0-1) after warping, over the visible pixels
    motion: float  # mean optical-flow length, pixels
    visible: float  # share of frame t's pixels the warping error is taken over


def flicker_score(previous, current):
    """VBench's temporal-flickering score of two uint8 frames: (255 - mean |a - b|) / 255."""
    return (255.0 - float(np.mean(cv2.absdiff(previous, current)))) / 255.0


class PairMeter:
    """Measures frame pairs of one size; holds the flow estimator and the pixel grid between pairs."""

    def __init__(self, height, width):
        self.size = (height, width)
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        self.grid = np.dstack([xs, ys])

    def measure(self, previous, current, previous_grey=None, current_grey=None):
        """PairMeasures of (t-1, t); the grey frames may be passed in when the caller has them already."""
        previous_grey = _grey(previous) if previous_grey is None else previous_grey
        current_grey = _grey(current) if current_grey is None else current_grey
        forward = self.flow.calc(previous_grey, current_grey, None)  # a pixel of t-1 moves by this into t
        backward = self.flow.calc(current_grey, previous_grey, None)  # where each pixel of t came from
        error, visible = self.warping_error(previous, current, forward, backward)
        motion = float(np.mean(np.hypot(forward[..., 0], forward[..., 1])))
        return PairMeasures(flicker_score(previous, current), error, motion, visible)

    def warping_error(self, previous, current, forward, backward):
        """(error, visible share): frame t-1 sampled where each pixel of t came from, compared with t."""
        source = self.grid + backward
        warped = cv2.remap(previous, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        forward_there = cv2.remap(forward, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        height, width = self.size
        inside = ((source[..., 0] >= 0) & (source[..., 0] <= width - 1)
                  & (source[..., 1] >= 0) & (source[..., 1] <= height - 1))
        # forward-backward check: going back to t-1 and forward again should come home
        round_trip = _squared_length(backward + forward_there)
        consistent = round_trip <= 0.01 * (_squared_length(backward) + _squared_length(forward_there)) + 0.5
        visible = inside & consistent & ~_motion_boundary(backward)
        difference = (warped.astype(np.float32) - current.astype(np.float32)) / 255.0
        squared = np.einsum("hwc,hwc->hw", difference, difference)  # summed over the 3 channels
        count = int(visible.sum())
        # no pixel the flow vouches for: the pair is all change, taken over every pixel (Lai et al.'s code
        # gives 0 here, which would rank the worst pair as the best)
        error = float(squared[visible].sum() / (3 * count)) if count else float(squared.mean() / 3)
        return error, count / squared.size


def _grey(frame):
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _squared_length(flow):
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def _motion_boundary(flow):
    """Where the flow's forward differences are large against the flow itself (Ruder et al.'s test)."""
    gradient = np.zeros(flow.shape[:2], dtype=np.float32)
    for axis in (0, 1):
        step = np.zeros_like(flow)
        if axis == 0:
            step[:-1] = flow[:-1] - flow[1:]
        else:
            step[:, :-1] = flow[:, :-1] - flow[:, 1:]
        gradient += _squared_length(step)
    return gradient > 0.01 * _squared_length(flow) + 0.002
