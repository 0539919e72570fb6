"""Keyframes for SparseCtrl: the frame each picture belongs to, and the condition and mask a run of frames gets.

Frames are written as the Prompt Schedule's indices (prompts/schedule.py), one per picture, in order:
`n` is frame n, `-n` counts from the end (-1 is the last frame), and a number with a point is a fraction of
the video (`0.5`: frame int(0.5·frames); `1.0`: the last), so a graph keeps its keyframes where they were when
the video's length changes. The official code writes `controlnet_image_indexs: [0, -1]`
(configs/prompts/3_sparsectrl/3_1_sparsectrl_i2v.yaml) and indexes the frames with them the same way.

What a run of frames gets (animatediff/pipelines/pipeline_animation.py, `__call__`): a zero condition and a 0
in the mask on every frame, then keyframe k's condition and a 1 in the mask on its frame; the mask is the
condition's last channel (sparse_controlnet.py: `torch.cat([controlnet_cond, conditioning_mask], dim=1)`).
Keyframe pictures are cropped to the video's aspect about their centre and resized with a bilinear filter
(scripts/animate.py: RandomResizedCrop with scale (1, 1) and the video's ratio, which always falls back to its
centre crop, on PIL pictures: antialiased).
"""
import re

import torch
import torch.nn.functional as F

NODE = "Apply SparseCtrl Keyframes (AnimateLCM)"
INPUT = "keyframe_frames"
INDEX = re.compile(r"-?\d+|\d*\.\d*")


class KeyframeError(ValueError):
    """Keyframe frames that cannot be placed; the message names the input and the fix."""


def _example(images):
    """Frames that would fit `images` pictures in a 16-frame video: '0, 8, -1'."""
    if images == 1:
        return "0"
    return ", ".join([str(round(15 * k / (images - 1))) for k in range(images - 1)] + ["-1"])


def parse_frames(text, images):
    """The frames as written (a tuple of strings), one per picture; anything else refused by name."""
    written = [part.strip() for part in re.split(r"[,\n]", str(text)) if part.strip()]  # commas or lines
    if not written:
        raise KeyframeError(f"{NODE}: '{INPUT}' is empty; write the frame of each of the {images} picture(s), in "
                            f"order, e.g. '{_example(images)}'.")
    for part in written:
        if not INDEX.fullmatch(part) or part == ".":
            raise KeyframeError(f"{NODE}: '{INPUT}' has '{part}', which is not a frame: write frame numbers separated "
                                f"by commas (0, 15), negative ones from the end (-1 is the last frame), or fractions "
                                f"of the video with a point (0.5 is the middle frame), e.g. '{_example(images)}'.")
        if "." in part and not 0.0 <= float(part) <= 1.0:
            raise KeyframeError(f"{NODE}: '{INPUT}' has the fraction {part}, which is not between 0 and 1 (0.5 is "
                                "the middle frame, 1.0 the last).")
    seen = {}
    for part in written:
        key = float(part) if "." in part else int(part)
        if (("." in part), key) in seen:
            raise KeyframeError(f"{NODE}: '{INPUT}' gives frame {part} twice; each picture needs a frame of its own.")
        seen[("." in part), key] = part
    if len(written) != images:
        many = "more pictures than frames" if images > len(written) else "more frames than pictures"
        raise KeyframeError(f"{NODE}: {images} picture(s) but {len(written)} frame(s) in '{INPUT}' ('{text}'): "
                            f"{many}. Give one frame per picture, in the pictures' order, e.g. '{_example(images)}'.")
    return tuple(written)


def resolve(written, frames):
    """{frame: picture} of a video of `frames` frames; frames outside it, or two pictures on one frame, refused."""
    placed, by = {}, {}
    for picture, part in enumerate(written):
        if "." in part:
            fraction = float(part)
            frame = frames - 1 if fraction == 1.0 else int(fraction * frames)
        else:
            index = int(part)
            frame = frames + index if index < 0 else index
            if index >= frames:
                raise KeyframeError(f"{NODE}: keyframe frame {part} in '{INPUT}' is past the end of this {frames}-frame "
                                    f"video (its frames are 0 to {frames - 1}; -1 is the last): lower it, or make the "
                                    "video longer (the latent's batch size).")
            if frame < 0:
                raise KeyframeError(f"{NODE}: keyframe frame {part} in '{INPUT}' is before the first frame of this "
                                    f"{frames}-frame video (-1 is the last frame, -{frames} the first).")
        if frame in placed:
            raise KeyframeError(f"{NODE}: '{by[frame]}' and '{part}' in '{INPUT}' are both frame {frame} of this "
                                f"{frames}-frame video; each picture needs a frame of its own.")
        placed[frame], by[frame] = picture, part
    return placed


def fit_images(images, width, height):
    """IMAGE [K, H, W, C] (0-1) → [K, 3, height, width]: centre-cropped to the video's aspect, resized bilinear.
    Transparency is composited over white and grey spread to three channels, as Image to Video does."""
    if images.shape[-1] == 4:
        pixels = images[..., :3] * images[..., 3:] + (1 - images[..., 3:])
    else:
        pixels = images[..., :3] if images.shape[-1] >= 3 else images[..., :1].expand(*images.shape[:-1], 3)
    pixels = pixels.movedim(-1, 1).float()
    _, _, h, w = pixels.shape
    if w * height > h * width:  # wider than the video: keep the full height
        crop_h, crop_w = h, min(w, round(h * width / height))
    else:
        crop_h, crop_w = min(h, round(w * height / width)), w
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    pixels = pixels[:, :, top:top + crop_h, left:left + crop_w]
    if (crop_h, crop_w) == (height, width):
        return pixels.clamp(0, 1)
    return F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)


def window_hint(conditions, placed, frames_of_run):
    """[len(frames_of_run), C + 1, h, w]: each keyframe's condition on its frame, zeros elsewhere; the mask last.

    conditions: [K, C, h, w], one per picture; placed: {frame: picture}; frames_of_run: the video's frames, in order."""
    count, channels = len(frames_of_run), conditions.shape[1]
    hint = torch.zeros(count, channels + 1, *conditions.shape[2:], dtype=conditions.dtype, device=conditions.device)
    for position, frame in enumerate(frames_of_run):
        if frame in placed:
            hint[position, :channels] = conditions[placed[frame]]
            hint[position, channels] = 1.0
    return hint
