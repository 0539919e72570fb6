"""FreeInit options for the AnimateLCM Sampler."""
from ..samplers.freeinit import FILTERS, FreeInit
from .declare import Node, Output
from .inputs import require_finite

STOP_TOOLTIP = ("Normalised stop frequency (0-1) of the low-pass filter over {}: below it the previous pass is kept, "
                "above it fresh noise is drawn. 0.25 is the FreeInit default; lower keeps less of the previous pass.")


class FreeInitOptions(Node):
    NODE_ID = "ALCM_FreeInitOptions"
    DISPLAY_NAME = "FreeInit Options (AnimateLCM)"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "iterations": ("INT", {"default": 3, "min": 1, "max": 10,
                                   "tooltip": "Sampling passes; each costs one full sampling. The FreeInit authors "
                                              "recommend 3-5; 1 is plain sampling."}),
            "filter": (list(FILTERS), {"default": "butterworth",
                                       "tooltip": "Low-pass filter between passes. butterworth (order 4) is the FreeInit "
                                                  "default; gaussian for models with more flicker; ideal and box cut sharply."}),
            "spatial_stop": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": STOP_TOOLTIP.format("height and width")}),
            "temporal_stop": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": STOP_TOOLTIP.format("frames")}),
            "butterworth_order": ("INT", {"default": 4, "min": 1, "max": 20,
                                          "tooltip": "Butterworth filter only: higher cuts more sharply (like ideal), "
                                                     "lower more softly (like gaussian)."}),
        }}

    OUTPUTS = (
        Output("FREEINIT", "freeinit", "Connect to the AnimateLCM Sampler's freeinit input."),
    )
    FUNCTION = "options"
    DESCRIPTION = ("FreeInit (more consistent motion): the sampler runs several passes, each starting from noise that "
                   "keeps the low spatio-temporal frequencies of the previous pass's video. Text-to-video (denoise 1).")

    def options(self, iterations, filter, spatial_stop, temporal_stop, butterworth_order):
        require_finite(self.DISPLAY_NAME, spatial_stop=spatial_stop, temporal_stop=temporal_stop)
        return (FreeInit(iterations, filter, spatial_stop, temporal_stop, butterworth_order),)
