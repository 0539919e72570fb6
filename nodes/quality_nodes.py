"""Video Quality (AnimateLCM): a video's flicker, warping error, motion and seam scores, and its per-frame curves
shown in the node."""
import logging
import os

import comfy.model_management
import comfy.utils
import folder_paths
import torch
from PIL import Image

from ..motion.context_windows import CONTEXT_KEY
from ..quality.plot import plot
from ..quality.report import measure_video, summary, to_json
from ..video.frames import frame_uint8
from ..video.latent_frames import DecodedFrames
from .declare import Node, Output

log = logging.getLogger(__name__)
NODE = "Video Quality (AnimateLCM)"


class VideoQuality(Node):
    NODE_ID = "ALCM_VideoQuality"
    DISPLAY_NAME = NODE
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip":
                                  "The sampler's steps. Used only with uniform Context Windows, whose seams move "
                                  "every step: the seams measured are those of every step."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The video's frames, in order (VAE Decode's output). Or connect latent "
                                                "and vae instead, for long videos."}),
                "latent": ("LATENT", {"tooltip": "The video's latents (the sampler's output), instead of images: "
                                                 "decoded a few frames at a time, so the whole video never sits in "
                                                 "RAM as IMAGE. Needs vae."}),
                "vae": ("VAE", {"tooltip": "The VAE that decodes `latent` (the checkpoint's)."}),
                "model": ("MODEL", {"tooltip": "The MODEL the sampler used, after Context Windows (AnimateLCM): the "
                                               "window seams are read from it. Without it no window seams are "
                                               "measured (window_seam is 1)."}),
            },
        }

    OUTPUTS = (
        Output("FLOAT", "flicker", "VBench's temporal flickering: (255 - mean absolute change between consecutive 8-bit frames) / 255. "
                                   "1 is a still video; lower flickers more."),
        Output("FLOAT", "warping_error", "Lai et al.'s warping error: each frame against the one before warped along the optical flow, mean "
                                         "squared RGB difference (0-1) where the flow is reliable. 0: every change follows the motion."),
        Output("FLOAT", "motion", "Mean optical-flow length between consecutive frames, in pixels: a video that barely moves shows "
                                  "here (and then flickers little whatever its quality)."),
        Output("FLOAT", "window_seam", "Warping error where context windows meet, divided by the warping error elsewhere: 1 means the seams "
                                       "do not show; 2 means twice the error at the seams. 1 without context windows."),
        Output("FLOAT", "loop_seam", "Warping error from the last frame to the first, divided by the mean between consecutive frames: near 1 "
                                     "for a loop that closes (closed_loop), large for a video that jumps back when it loops."),
        Output("STRING", "report", "The whole report as JSON: every pair's measures, the worst frames, the seams, what each number means."),
        Output("IMAGE", "plot", "The per-frame curves (flicker, warping error, motion) with the window seams marked, as shown in the node."),
    )
    OUTPUT_NODE = True
    FUNCTION = "measure"
    DESCRIPTION = ("Measures a video without any model: flicker (VBench), warping error along the optical flow "
                   "(Lai et al. 2018), motion, and how much worse it is where context windows meet and where it "
                   "loops. Shows the per-frame curves in the node; the numbers are outputs.")

    def measure(self, steps=4, images=None, latent=None, vae=None, model=None):
        warnings = []
        windows = _windows(model, warnings)
        frames = _frames(images, latent, vae)
        progress = comfy.utils.ProgressBar(len(frames))
        report = measure_video(_uint8_frames(frames, progress), windows, steps, name="images" if latent is None
                               else "the decoded latent")
        picture = plot(report)
        for message in warnings:
            log.warning("%s", message)
        ui = {"images": [_save_preview(picture)]}
        if warnings:
            ui["animatelcm_warnings"] = warnings
        numbers = summary(report)
        return {"ui": ui, "result": (*(float(numbers[k]) for k in RETURN_KEYS), to_json(report),
                                     torch.from_numpy(picture.copy()).float().div_(255).unsqueeze(0))}


RETURN_KEYS = ("flicker", "warping_error", "motion", "window_seam", "loop_seam")


def _windows(model, warnings):
    """The MODEL's Context Windows (AnimateLCM) options, or None (with a warning when a MODEL has none)."""
    if model is None:
        return None
    options = model.model_options.get("transformer_options", {}).get(CONTEXT_KEY)
    if options is None:
        if "context_handler" in model.model_options:
            warnings.append(f"{NODE}: the MODEL samples with ComfyUI's own context windows, whose seams this node "
                            "does not read: window_seam is 1. Context Windows (AnimateLCM) gives the seams.")
        else:
            warnings.append(f"{NODE}: the MODEL has no Context Windows (AnimateLCM), so no window seams are "
                            "measured (window_seam is 1). Connect the MODEL that leaves Context Windows.")
    return options


def _frames(images, latent, vae):
    if images is not None and latent is not None:
        raise ValueError(f"{NODE} got both images and latent: connect one of them (latent with vae for long "
                         "videos), not both.")
    if images is not None:
        return images
    if latent is None:
        raise ValueError(f"{NODE} has no video to measure: connect images (VAE Decode's output), or latent (the "
                         "sampler's output) and vae.")
    if vae is None:
        raise ValueError(f"{NODE} got a latent but no vae to decode it: connect the checkpoint's VAE to its vae "
                         "input.")
    return DecodedFrames(vae, latent["samples"])


def _uint8_frames(frames, progress):
    """The frames as uint8 RGB, one at a time, with progress and Cancel between frames."""
    for index in range(len(frames)):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if not bool(torch.isfinite(frames[index]).all()):
            raise ValueError(f"{NODE}: frame {index} holds NaN or infinite values, which no video can show: look at "
                             "the node that made the frames (a VAE decode in fp16 can overflow; try --fp32-vae).")
        yield frame_uint8(frames, index)
        progress.update(1)


def _save_preview(picture):
    """The plot as a PNG in ComfyUI's temp folder, shown in the node as core's Preview Image shows images."""
    height, width = picture.shape[:2]
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        "AnimateLCM_quality", folder_paths.get_temp_directory(), width, height)
    file = f"{name}_{counter:05}_.png"
    Image.fromarray(picture).save(os.path.join(folder, file), compress_level=1)
    return {"filename": file, "subfolder": subfolder, "type": "temp"}
