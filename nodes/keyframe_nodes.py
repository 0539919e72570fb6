"""Keyframe nodes: load a SparseCtrl, and put keyframe pictures or sketches on the frames you choose."""
import logging

import folder_paths

from ..control.keyframe_control import SparseCtrlKeyframes, on_both_prompts
from ..control.keyframes import INPUT, NODE, parse_frames
from ..control.sparsectrl import RGB, load_sparsectrl
from ..weights.model_folders import full_path
from .declare import Node, Output
from .inputs import require_finite

log = logging.getLogger(__name__)
CONTROLNETS = "controlnet"  # ComfyUI's folder, where Advanced-ControlNet users keep their SparseCtrl files too


class LoadSparseCtrl(Node):
    NODE_ID = "ALCM_LoadSparseCtrl"
    DISPLAY_NAME = "Load SparseCtrl (AnimateLCM)"
    CATEGORY = "AnimateLCM/control"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sparsectrl_name": (folder_paths.get_filename_list(CONTROLNETS), {
                "tooltip": "A SparseCtrl from models/controlnet: v3_sd15_sparsectrl_rgb.ckpt (keyframes are pictures) "
                           "or v3_sd15_sparsectrl_scribble.ckpt (keyframes are sketches: white lines on black), from "
                           "guoyww/animatediff; the same weights saved as .safetensors work too."}),
        }}

    OUTPUTS = (
        Output("SPARSECTRL", "sparsectrl", "The SparseCtrl, ready for 'Apply SparseCtrl Keyframes'."),
    )
    FUNCTION = "load"
    DESCRIPTION = ("Loads AnimateDiff v3's SparseCtrl (RGB or scribble): a ControlNet with its own temporal layers that "
                   "steers a video from a few keyframes. Refuses plain ControlNets, motion modules and damaged files, "
                   "saying what the file is.")

    def load(self, sparsectrl_name):
        sparsectrl = load_sparsectrl(full_path(CONTROLNETS, sparsectrl_name))
        log.info("SparseCtrl %s: %s keyframes", sparsectrl.name, sparsectrl.kind)
        return (sparsectrl,)


class ApplySparseCtrlKeyframes(Node):
    NODE_ID = "ALCM_ApplySparseCtrlKeyframes"
    DISPLAY_NAME = NODE
    CATEGORY = "AnimateLCM/control"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING", {"tooltip": "The prompt (a Prompt Schedule works too). SparseCtrl steers both "
                                                     "prompts' passes, as the official pipeline runs it on both."}),
            "negative": ("CONDITIONING", {"tooltip": "The negative prompt."}),
            "sparsectrl": ("SPARSECTRL", {"tooltip": "From 'Load SparseCtrl (AnimateLCM)'."}),
            "images": ("IMAGE", {"tooltip": "The keyframes, one picture per keyframe (a batch: Load Image → Batch "
                                            "Images). RGB SparseCtrl: pictures, encoded by the VAE. Scribble: sketches, "
                                            "white lines on black. Each is cropped to the video's aspect about its "
                                            "centre and resized to the video's size."}),
            INPUT: ("STRING", {"default": "0, -1", "tooltip":
                               "The frame of each picture, in order, separated by commas: 0 is the first frame, -1 "
                               "the last (negative numbers count from the end), 0.5 the middle (a number with a point "
                               "is a fraction of the video). '0, -1': the first picture starts the video, the second "
                               "ends it. Frames past the video's end, two pictures on one frame, or a count that "
                               "differs from the pictures' are refused."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                                   "How strongly the keyframes steer the video (the official conditioning_scale, "
                                   "1.0)."}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                        "The share of the sampling after which it starts steering (0: from the "
                                        "first step, as the official pipeline does)."}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                                      "The share of the sampling after which it stops (1: to the last step)."}),
        }, "optional": {
            "vae": ("VAE", {"tooltip": "The checkpoint's VAE: needed by RGB SparseCtrl, which conditions on the "
                                       "keyframes' latents (encoded once per run at the video's size)."}),
        }}

    OUTPUTS = (
        Output("CONDITIONING", "positive", "The prompt with the keyframes: connect it to the sampler's positive."),
        Output("CONDITIONING", "negative", "The negative prompt with the keyframes: connect it to the sampler's negative."),
    )
    FUNCTION = "apply"
    DESCRIPTION = ("Keyframes with SparseCtrl: 'this picture at frame 0, that one at the last frame, animate between "
                   "them'. Frames without a keyframe get SparseCtrl's empty condition, as in the official code. Under "
                   "Context Windows each window gets the keyframes that fall inside it; a window with none is left "
                   "unsteered.")

    def apply(self, positive, negative, sparsectrl, images, keyframe_frames, strength, start_percent, end_percent,
              vae=None):
        require_finite(NODE, strength=strength, start_percent=start_percent, end_percent=end_percent)
        if end_percent < start_percent:
            raise ValueError(f"{NODE}: end_percent ({end_percent}) is before start_percent ({start_percent}).")
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"{NODE}: 'images' is {tuple(images.shape)}; it takes an IMAGE batch [pictures, height, "
                             "width, channels] with at least one picture.")
        frames = parse_frames(keyframe_frames, images.shape[0])
        if sparsectrl.kind == RGB and vae is None:
            raise ValueError(f"{NODE}: '{sparsectrl.name}' is an RGB SparseCtrl, which conditions on the keyframes' "
                             "latents: connect the checkpoint's VAE to 'vae'.")
        if strength == 0:
            return (positive, negative)
        control = SparseCtrlKeyframes(sparsectrl, images, frames, vae if sparsectrl.kind == RGB else None)
        control.strength, control.timestep_percent_range = strength, (start_percent, end_percent)
        return on_both_prompts(control, positive, negative)
