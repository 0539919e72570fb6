"""Motion-module nodes: load a module file, and animate an SD1.5 MODEL with it."""
import logging

import folder_paths
import torch

from ..motion.injection import animate
from ..motion.motion_module import load_motion_module
from ..weights.model_folders import MOTION_MODULES, full_path
from .declare import Node, Output
from .inputs import require_finite

log = logging.getLogger(__name__)
MOTION_PRECISIONS = {"auto": None, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class LoadMotionModule(Node):
    NODE_ID = "ALCM_LoadMotionModule"
    DISPLAY_NAME = "Load Motion Module (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "motion_module_name": (folder_paths.get_filename_list(MOTION_MODULES), {
                "tooltip": "A motion module from models/animatediff_models: AnimateLCM_sd15_t2v.ckpt for 4-step "
                           "video, AnimateDiff-Lightning's (animatediff_lightning_4step_comfyui.safetensors and its "
                           "1/2/8-step and diffusers forms), or any SD1.5 AnimateDiff module (v1, v2, v3, diffusers "
                           "MotionAdapter)."}),
        }}

    OUTPUTS = (
        Output("MOTION_MODEL", "motion_module", "The motion module, ready for 'Apply Motion Module'."),
    )
    FUNCTION = "load"
    DESCRIPTION = ("Loads an AnimateLCM, AnimateDiff-Lightning or AnimateDiff SD1.5 motion module and recognises its "
                   "kind, frame limit and (Lightning) the step count it was distilled for.")

    def load(self, motion_module_name):
        module = load_motion_module(full_path(MOTION_MODULES, motion_module_name))
        log.info("motion module %s: %s", module.name, module.description())
        return (module,)


class ApplyMotionModule(Node):
    NODE_ID = "ALCM_ApplyMotionModule"
    DISPLAY_NAME = "Apply Motion Module (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "An SD1.5 model (base or personalized checkpoint). It is not changed: "
                                           "a new, animated MODEL comes out."}),
            "motion_module": ("MOTION_MODEL", {"tooltip": "From 'Load Motion Module'."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05,
                                   "tooltip": "1.0 is the module as trained; 0 leaves the image model exactly as "
                                              "it was (frames become independent images)."}),
        }, "optional": {
            "motion_precision": (list(MOTION_PRECISIONS), {
                "default": "auto",
                "tooltip": "The number format the motion layers compute in. auto: the model's own (fp32 on a CPU, "
                           "usually fp16 on a GPU). bf16/fp16 are faster only where the hardware does them fast "
                           "(GPUs; CPUs with AVX-512 BF16 for bf16; elsewhere they are slower than fp32). Measured "
                           "against fp32, on what the motion layers add to the image: bf16 differs by about 0.8% "
                           "(RMS), fp16 by about 0.1%."}),
        }}

    OUTPUTS = (
        Output("MODEL", None, "The animated MODEL: each latent in the batch is one frame of the video."),
    )
    FUNCTION = "apply"
    DESCRIPTION = ("Adds the motion module's temporal layers to an SD1.5 MODEL, so the latent batch is sampled "
                   "as the frames of one video.")

    def apply(self, model, motion_module, strength, motion_precision="auto"):
        require_finite(self.DISPLAY_NAME, strength=strength)
        if motion_precision not in MOTION_PRECISIONS:
            raise ValueError(f"motion_precision '{motion_precision}' is not one of {', '.join(MOTION_PRECISIONS)}.")
        if strength == 0:
            return (model.clone(),)
        return (animate(model, motion_module, strength, MOTION_PRECISIONS[motion_precision]),)
