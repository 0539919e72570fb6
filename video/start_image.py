"""The start image of image-to-video, prepared as AnimateLCM-I2V prepares it (animatelcm/utils/util.py
`resize_and_crop`): resized with PIL's LANCZOS to cover width×height, then centre-cropped."""
import logging

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)


def flatten_alpha(image):
    """[H, W, C] float 0-1 → RGB: transparency composited over white, grey spread to three channels."""
    if image.shape[-1] == 4:
        rgb, alpha = image[..., :3], image[..., 3:]
        return rgb * alpha + (1 - alpha)
    if image.shape[-1] == 1:
        return image.expand(-1, -1, 3)
    return image[..., :3]


def resize_and_crop(image, width, height):
    """One IMAGE frame ([H, W, C] float 0-1) → [height, width, 3] float, exactly the official crop."""
    pixels = (flatten_alpha(image).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    picture = Image.fromarray(pixels)
    orig_width, orig_height = picture.size
    if width / height > orig_width / orig_height:
        resize_width, resize_height = width, round(width / orig_width * orig_height)
    else:
        resize_width, resize_height = round(height / orig_height * orig_width), height
    resized = picture.resize((resize_width, resize_height), Image.LANCZOS)
    x0, y0 = (resize_width - width) / 2, (resize_height - height) / 2
    cropped = resized.crop((x0, y0, x0 + width, y0 + height))
    return torch.from_numpy(np.asarray(cropped, dtype=np.float32) / 255.0)


def start_frames(images, width, height, frames):
    """The IMAGE batch as the video's reference frames: one per frame if the batch has exactly
    `frames` images, otherwise the first image alone (used for every frame)."""
    if images.shape[0] != frames:
        if images.shape[0] > 1:
            log.info("image-to-video: %d images for %d frames, so the first image starts every frame",
                     images.shape[0], frames)
        images = images[:1]
    if images.shape[1] < height or images.shape[2] < width:
        log.info("image-to-video: the start image (%d×%d) is smaller than the video (%d×%d) and is upscaled",
                 images.shape[2], images.shape[1], width, height)
    return torch.stack([resize_and_crop(image, width, height) for image in images])
