"""Image-to-video nodes (AnimateLCM-I2V): animate a start image, and match the video's colours to it."""
import logging

import comfy.model_management
import comfy.utils
import torch

from ..motion.image_injection import (
    add_image_conditioning,
    is_animated,
    require_image_encoder,
)
from ..motion.injection import animate
from ..video.color_match import match_colors
from ..video.start_image import start_frames
from .declare import Node, Output
from .inputs import require_finite

log = logging.getLogger(__name__)
NODE = "AnimateLCM Image to Video"
IMAGE_TOOLTIP = ("The picture to animate. A batch of images: each frame gets its own start image if the batch has "
                 "exactly as many images as frames, otherwise the first image starts every frame.")


def require_multiple_of_8(**sizes):
    for name, value in sizes.items():
        if value % 8:
            low, high = value // 8 * 8, value // 8 * 8 + 8
            nearest = low if value - low < high - value and low > 0 else high
            raise ValueError(f"{NODE}: '{name}' is {value}, not a multiple of 8 (the VAE works in 8-pixel cells): "
                             f"use {nearest}.")


class ImageToVideo(Node):
    NODE_ID = "ALCM_ImageToVideo"
    DISPLAY_NAME = NODE
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5 MODEL, after the spatial LoRA (AnimateLCM_sd15_i2v_lora). If "
                                           "'Apply Motion Module' has not animated it yet, this node applies the motion "
                                           "module itself. It is not changed: a new MODEL comes out."}),
            "motion_module": ("MOTION_MODEL", {"tooltip": "AnimateLCM_sd15_i2v.ckpt from 'Load Motion Module': the only "
                                                          "module with the image encoder."}),
            "image": ("IMAGE", {"tooltip": IMAGE_TOOLTIP}),
            "vae": ("VAE", {"tooltip": "The VAE that encodes the start image (the checkpoint's)."}),
            "width": ("INT", {"default": 768, "min": 16, "max": 2048, "step": 8,
                              "tooltip": "Video width, a multiple of 8. The image is resized to cover width×height and "
                                         "centre-cropped (LANCZOS), as AnimateLCM-I2V does. 768×512 is the official default."}),
            "height": ("INT", {"default": 512, "min": 16, "max": 2048, "step": 8, "tooltip": "Video height, a multiple of 8."}),
            "frames": ("INT", {"default": 16, "min": 1, "max": 64,
                               "tooltip": "16 is the length AnimateLCM-I2V was trained on."}),
            "motion_scale": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.5, "step": 0.05,
                                       "tooltip": "0 = a still picture; higher = more motion, less likeness to the "
                                                  "image. 0.8 is the official default."}),
        }, "optional": {
            "reference_latent": ("LATENT", {"tooltip": "Instead of encoding the image here: your own encoded start "
                                                       "latent (VAE Encode). One latent starts every frame; exactly "
                                                       "'frames' latents give each frame its own (video-to-video through "
                                                       "the image encoder). Its size sets the video's size."}),
        }}

    OUTPUTS = (
        Output("MODEL", "model", "The MODEL that animates the image: sample it with the AnimateLCM Sampler (it picks the I2V "
                                 "schedule itself; cfg 1, 4 steps recommended)."),
        Output("LATENT", "latent", "An empty video latent of the right size and length: the video starts from pure noise."),
    )
    FUNCTION = "apply"
    DESCRIPTION = ("AnimateLCM-I2V: animates a still image in 2-4 steps. The image enters only through the motion "
                   "module's image encoder, whose features are added to the UNet's four down levels.")

    def apply(self, model, motion_module, image, vae, width, height, frames, motion_scale, reference_latent=None):
        require_finite(NODE, motion_scale=motion_scale)
        require_image_encoder(motion_module)  # before the VAE runs
        if reference_latent is not None:
            reference = reference_latent["samples"]
            if reference.shape[0] != frames:
                reference = reference[:1]
            height, width = reference.shape[-2] * 8, reference.shape[-1] * 8
        else:
            require_multiple_of_8(width=width, height=height)
            # The official encode_img samples the VAE posterior. ComfyUI's VAE returns its mode since 0.3.4x
            # (DiagonalGaussianRegularizer(sample=False)) and sampled it, from the global RNG, before: the
            # March-2024 host does. The fixed seed makes that older sampling repeat: same seed, same video.
            devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(0)
                reference = vae.encode(start_frames(image, width, height, frames))
        reference = model.model.process_latent_in(reference.float())  # × 0.18215, as the official encode_img
        if is_animated(model):
            animated = model
        else:
            log.info("image-to-video: the MODEL has no motion layers yet, so '%s' is applied at strength 1",
                     motion_module.name)
            animated = animate(model, motion_module)
        conditioned = add_image_conditioning(animated, motion_module, reference, motion_scale)
        latent = torch.zeros([frames, 4, height // 8, width // 8], device=comfy.model_management.intermediate_device())
        return (conditioned, {"samples": latent})


class MatchColors(Node):
    NODE_ID = "ALCM_MatchColors"
    DISPLAY_NAME = "Match Colors to Image (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The decoded video frames (VAE Decode)."}),
            "image": ("IMAGE", {"tooltip": "The start image the video was made from. A batch with as many images as "
                                           "frames matches each frame to its own image; otherwise the first is used."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "1 = AnimateLCM-I2V's own colour match; 0 = the frames unchanged."}),
        }}

    OUTPUTS = (
        Output("IMAGE", None, "The frames with the start image's hue, saturation and brightness."),
    )
    FUNCTION = "match"
    DESCRIPTION = ("AnimateLCM-I2V's colour match: shifts each frame's mean saturation and brightness (and 3% of the "
                   "hue difference) to the start image's, in OpenCV's 8-bit HSV, so the video keeps the image's colours.")

    def match(self, images, image, strength):
        require_finite(self.DISPLAY_NAME, strength=strength)
        progress = comfy.utils.ProgressBar(images.shape[0])

        def on_frame():
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update(1)
        return (match_colors(images, image, strength, on_frame),)
