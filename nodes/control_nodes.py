"""Hints for ControlNets over a video: Canny edges frame by frame."""
import comfy.model_management
import comfy.utils

from ..control.preprocess import canny_edges
from .declare import Node, Output


class CannyEdges(Node):
    NODE_ID = "ALCM_CannyEdges"
    DISPLAY_NAME = "Canny Edges (AnimateLCM)"
    CATEGORY = "AnimateLCM/control"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The frames to find edges in: Load Video's frames, for a ControlNet that "
                                            "keeps the source video's shapes (control_v11p_sd15_canny)."}),
            "low_threshold": ("INT", {"default": 100, "min": 1, "max": 1000, "tooltip":
                                      "Edges weaker than this (8-bit gradient) are dropped. 100 is ControlNet's own "
                                      "Canny demo setting; lower finds more edges (fine texture), higher fewer."}),
            "high_threshold": ("INT", {"default": 200, "min": 1, "max": 1000, "tooltip":
                                       "Edges stronger than this are always kept, and weaker ones only where they "
                                       "continue a kept edge. 200 is ControlNet's own setting; it must be at least "
                                       "low_threshold."}),
        }}

    OUTPUTS = (
        Output("IMAGE", "edges", "White edges on black, one picture per frame: connect it to Apply ControlNet's image, with a "
                                 "Canny ControlNet."),
    )
    FUNCTION = "detect"
    DESCRIPTION = ("Canny edges of every frame, exactly as ControlNet 1.1's own annotator finds them (OpenCV, on the "
                   "8-bit frame), one frame at a time: a long video needs no more working memory than one frame, "
                   "and no extra library (ComfyUI's own Canny needs kornia and runs every frame at once).")

    def detect(self, images, low_threshold, high_threshold):
        if high_threshold < low_threshold:
            raise ValueError(f"Canny Edges (AnimateLCM): high_threshold ({high_threshold}) is below low_threshold "
                             f"({low_threshold}); set it to at least {low_threshold} (ControlNet's own: 100 and 200).")
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] < 3:
            raise ValueError(f"Canny Edges (AnimateLCM): 'images' is {tuple(images.shape)}; it takes an IMAGE batch "
                             "[frames, height, width, 3] with at least one frame.")
        bar = comfy.utils.ProgressBar(images.shape[0])

        def progress(done, total):
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)
        return (canny_edges(images, low_threshold, high_threshold, progress),)
