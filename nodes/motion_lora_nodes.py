"""Motion LoRA node: a camera move (zoom, pan, tilt, roll) merged into a motion module."""
import folder_paths

from ..motion.motion_lora import apply_motion_lora, load_motion_lora
from ..weights.model_folders import MOTION_LORAS, full_path
from .declare import Node, Output
from .inputs import require_finite


class LoadMotionLoRA(Node):
    NODE_ID = "ALCM_LoadMotionLoRA"
    DISPLAY_NAME = "Load Motion LoRA (AnimateLCM)"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "motion_module": ("MOTION_MODEL", {"tooltip": "From 'Load Motion Module' (or another 'Load Motion LoRA' "
                                                          "to combine moves). It is not changed: a new one comes out."}),
            "motion_lora_name": (folder_paths.get_filename_list(MOTION_LORAS), {
                "tooltip": "A motion LoRA from models/animatediff_motion_lora, e.g. v2_lora_ZoomIn.ckpt, "
                           "v2_lora_PanLeft.ckpt. Made for AnimateDiff v2; AnimateLCM shares its layout."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -2.0, "max": 2.0, "step": 0.05,
                                   "tooltip": "1.0 is the move as trained; 0 is exactly the module without the LoRA; "
                                              "negative values push the other way."}),
        }}

    OUTPUTS = (
        Output("MOTION_MODEL", "motion_module", "The motion module with the LoRA merged: connect it to 'Apply Motion Module'."),
        Output("STRING", "report", "What was merged, and anything left out."),
    )
    FUNCTION = "load"
    DESCRIPTION = ("Merges an AnimateDiff motion LoRA (camera moves: zoom, pan, tilt, roll) into a motion module's "
                   "temporal attention. Chain several to combine moves.")

    def load(self, motion_module, motion_lora_name, strength):
        require_finite(self.DISPLAY_NAME, strength=strength)
        lora = load_motion_lora(full_path(MOTION_LORAS, motion_lora_name))
        return apply_motion_lora(motion_module, lora, strength)
