"""ControlNet hints made from a video's frames, one frame at a time.

Canny edges as ControlNet 1.1's own annotator makes them for `control_v11p_sd15_canny` (lllyasviel/ControlNet-v1-1-nightly,
annotator/canny: `cv2.Canny(img, low_threshold, high_threshold)` on the 8-bit RGB picture, 100/200 in its demo).
Frame by frame, so the working memory is one frame's whatever the video's length (ComfyUI's own Canny node runs
kornia on the whole batch at once: several copies of a long video's frames at a time).
"""
import cv2
import numpy as np
import torch


def canny_edges(images, low_threshold, high_threshold, progress=None):
    """IMAGE [N, H, W, 3] of 0/1 edges of IMAGE `images` [N, H, W, C], as ControlNet's Canny annotator finds them.

    The three channels are one stored plane seen three times (an expanded view): a third of the memory of
    three copies, and every IMAGE consumer reads it the same way."""
    frames = images.shape[0]
    edges = torch.empty(images.shape[:3], dtype=torch.float32)
    for index in range(frames):
        picture = (images[index, :, :, :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        edges[index] = torch.from_numpy(cv2.Canny(np.ascontiguousarray(picture), low_threshold, high_threshold))
        if progress is not None:
            progress(index + 1, frames)
    return edges.div_(255).unsqueeze(-1).expand(-1, -1, -1, 3)
