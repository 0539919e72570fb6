"""AnimateLCM-I2V's colour match of the decoded frames to the start image (animatelcm/utils/util.py
`adjust_colors`, applied per frame by pipeline_animation.decode_latents).

Per frame, in OpenCV's 8-bit HSV: diff = mean(start image) − mean(frame) per channel;
H += 0.03·diff (clipped to 0..180), S += diff, V += diff (clipped to 0..255), written back into
the uint8 image (so truncated, as numpy assignment does), then back to RGB. The frame is made
8-bit by truncation (`(x·255).astype(uint8)`) as the official code does; the start image, read
there from its file, is rounded back to its bytes here.
"""
import cv2
import numpy as np
import torch

from .start_image import flatten_alpha

HUE_SHARE = 0.03


def _hsv_means(rgb_uint8):
    return cv2.cvtColor(rgb_uint8, cv2.COLOR_RGB2HSV).reshape(-1, 3).mean(axis=0)


def match_frame(frame_uint8, source_means):
    """One RGB uint8 frame matched to the start image's HSV means (numpy [3]); returns RGB uint8."""
    hsv = cv2.cvtColor(frame_uint8, cv2.COLOR_RGB2HSV)
    diff = source_means - hsv.reshape(-1, 3).mean(axis=0)
    hsv[..., 0] = np.clip(hsv[..., 0] + HUE_SHARE * diff[0], 0, 180)
    hsv[..., 1] = np.clip(hsv[..., 1] + diff[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + diff[2], 0, 255)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def match_colors(frames, start_images, strength=1.0, on_frame=None):
    """IMAGE frames ([N, H, W, 3] float 0-1) matched to the start image(s); a new tensor.

    start_images: one image for every frame, or exactly N (frame i matches image i). strength 1 is
    the official match; between 0 and 1 the result is blended with the frame."""
    per_frame = start_images.shape[0] == frames.shape[0]
    means = [_hsv_means((flatten_alpha(image).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy())
             for image in (start_images if per_frame else start_images[:1])]
    out = torch.empty(frames.shape[:3] + (3,), dtype=torch.float32)
    for i, frame in enumerate(frames):
        frame = flatten_alpha(frame).float().cpu()
        frame_uint8 = (frame.clamp(0, 1).numpy() * 255).astype(np.uint8)
        matched = torch.from_numpy(match_frame(frame_uint8, means[i if per_frame else 0]).astype(np.float32) / 255.0)
        out[i] = matched if strength == 1.0 else torch.lerp(frame, matched, strength)
        if on_frame is not None:
            on_frame()
    return out
