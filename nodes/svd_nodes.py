"""AnimateLCM-SVD-xt nodes: load the distilled Stable Video Diffusion UNet, and its official sigmas."""
import logging

import folder_paths

from ..svd.load import load_animatelcm_svd
from ..svd.schedule import TRAINING_STEPS, is_svd_model, svd_sigmas
from ..weights.model_folders import DIFFUSION_MODELS, full_path
from .declare import Node, Output

log = logging.getLogger(__name__)


class LoadAnimateLCMSVD(Node):
    NODE_ID = "ALCM_LoadAnimateLCMSVD"
    DISPLAY_NAME = "Load AnimateLCM-SVD-xt"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet_name": (folder_paths.get_filename_list(DIFFUSION_MODELS), {
                "tooltip": "AnimateLCM-SVD-xt-1.1.safetensors or AnimateLCM-SVD-xt.safetensors (wangfuyun/"
                           "AnimateLCM-SVD-xt) from models/diffusion_models or models/unet. Diffusers' layout, as "
                           "released, or ComfyUI's."}),
        }}

    OUTPUTS = (
        Output("MODEL", None, "ComfyUI's Stable Video Diffusion MODEL with AnimateLCM's 4-step weights: condition it with "
                              "SVD_img2vid_Conditioning (its augmentation_level noises pixels in [0, 1], so 0.02 is twice the "
                              "official 0.02's noise; 0.01 gives the official noise) and sample with 'Video Linear CFG "
                              "Guidance' (min_cfg 1.0) → 'AnimateLCM Sampler' (cfg 1.2), the official app's guidance."),
    )
    FUNCTION = "load"
    DESCRIPTION = ("Loads AnimateLCM-SVD-xt, Stable Video Diffusion xt distilled to 4 steps (image to 25 frames of "
                   "video). The CLIP vision and VAE come from svd_xt.safetensors through Image Only Checkpoint Loader. "
                   "Noise augmentation: ComfyUI's SVD_img2vid_Conditioning adds augmentation_level·noise to pixels in "
                   "[0, 1], the official pipeline to pixels in [-1, 1]: the same number is twice the official noise.")

    def load(self, unet_name):
        model = load_animatelcm_svd(full_path(DIFFUSION_MODELS, unet_name))
        log.info("AnimateLCM-SVD-xt %s: loaded as %s", unet_name, type(model.model).__name__)
        return (model,)


class AnimateLCMSVDScheduler(Node):
    NODE_ID = "ALCM_SVDScheduler"
    DISPLAY_NAME = "AnimateLCM-SVD Scheduler"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The MODEL from 'Load AnimateLCM-SVD-xt'."}),
            "steps": ("INT", {"default": 4, "min": 1, "max": TRAINING_STEPS,
                              "tooltip": "4 is the official setting; 1-2 give a soft draft, 6-8 a little more detail."}),
        }}

    OUTPUTS = (
        Output("SIGMAS", None, "Connect to SamplerCustom's sigmas input (with KSamplerSelect → lcm)."),
    )
    FUNCTION = "get_sigmas"
    DESCRIPTION = ("The official AnimateLCM-SVD-xt sigmas (4 steps: 700, 128.6, 13.68, 0.497, 0) for SamplerCustom. "
                   "The consistency step is ComfyUI's own 'lcm' sampler (KSamplerSelect → lcm); guidance as the "
                   "official app: Video Linear CFG Guidance (min_cfg 1.0) on the MODEL and cfg 1.2.")

    def get_sigmas(self, model, steps):
        if not is_svd_model(model):
            raise ValueError("AnimateLCM-SVD Scheduler: this MODEL is not Stable Video Diffusion. Connect the MODEL "
                             "from 'Load AnimateLCM-SVD-xt'; for SD1.5 AnimateLCM use 'AnimateLCM Scheduler'.")
        return (svd_sigmas(steps),)
