"""LoRA nodes: personal style from images (style LoRAs) and AnimateLCM's spatial LoRA."""
import folder_paths

from ..lora.apply import apply_lora, apply_spatial_lora
from ..weights.files import read_state_dict
from ..weights.model_folders import full_path
from .declare import Node, Output
from .inputs import require_finite

STACK_SIZE = 5
NONE = "None"


def _apply(model, clip, name, strength_model, strength_clip):
    # the engine's errors (WeightFileError, LoRAMatchError) name the file and the fix; ComfyUI names the node
    return apply_lora(model, clip, read_state_dict(full_path("loras", name)), name, strength_model, strength_clip)


class LoadStyleLoRA(Node):
    NODE_ID = "ALCM_LoadStyleLoRA"
    DISPLAY_NAME = "Load Style LoRA (AnimateLCM)"
    CATEGORY = "AnimateLCM/LoRA"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5 model, before or after 'Apply Motion Module': the LoRA only "
                                           "touches image layers either way."}),
            "clip": ("CLIP", {"tooltip": "The text encoder the LoRA's trigger words were trained with."}),
            "lora_name": (folder_paths.get_filename_list("loras"), {
                "tooltip": "An SD1.5 style LoRA from models/loras: kohya, diffusers/PEFT or LyCORIS (LoCon, LoHa, LoKr)."}),
            "strength_model": ("FLOAT", {"default": 0.8, "min": -4.0, "max": 4.0, "step": 0.05,
                                         "tooltip": "Strength on the image layers, scaled by the file's alpha/rank as "
                                                    "everywhere in ComfyUI. 0.8 is AnimateLCM's default."}),
            "strength_clip": ("FLOAT", {"default": 0.8, "min": -4.0, "max": 4.0, "step": 0.05,
                                        "tooltip": "Strength on the text encoder."}),
        }}

    OUTPUTS = (
        Output("MODEL", "model", "The styled MODEL."),
        Output("CLIP", "clip", "The styled CLIP."),
        Output("STRING", "report", "How many layers of the file were patched."),
    )
    FUNCTION = "load"
    DESCRIPTION = "Applies a style LoRA (trained on your images) to the image layers and text encoder. Chain several."

    def load(self, model, clip, lora_name, strength_model, strength_clip):
        require_finite(self.DISPLAY_NAME, strength_model=strength_model, strength_clip=strength_clip)
        model, clip, report = _apply(model, clip, lora_name, strength_model, strength_clip)
        return (model, clip, str(report))


class StyleLoRAStack(Node):
    NODE_ID = "ALCM_StyleLoRAStack"
    DISPLAY_NAME = "Style LoRA Stack (AnimateLCM)"
    CATEGORY = "AnimateLCM/LoRA"

    @classmethod
    def INPUT_TYPES(cls):
        names = [NONE] + folder_paths.get_filename_list("loras")
        required = {"model": ("MODEL", {"tooltip": "The SD1.5 model."}),
                    "clip": ("CLIP", {"tooltip": "Its text encoder."})}
        for i in range(1, STACK_SIZE + 1):
            required[f"lora_{i}"] = (names, {"default": NONE, "tooltip": f"Style LoRA {i}, or None."})
            required[f"strength_{i}"] = ("FLOAT", {"default": 0.8, "min": -4.0, "max": 4.0, "step": 0.05,
                                                   "tooltip": f"Strength of LoRA {i} on image layers and text encoder."})
        return {"required": required}

    OUTPUTS = (
        Output("MODEL", "model", "The MODEL with every LoRA of the stack applied, in order."),
        Output("CLIP", "clip", "The CLIP with every LoRA of the stack applied."),
        Output("STRING", "report", "How many layers each file patched, one line per LoRA."),
    )
    FUNCTION = "load"
    DESCRIPTION = f"Up to {STACK_SIZE} style LoRAs in one node, applied in order; None slots are skipped."

    def load(self, model, clip, **slots):
        require_finite(self.DISPLAY_NAME,
                       **{f"strength_{i}": slots[f"strength_{i}"] for i in range(1, STACK_SIZE + 1)})
        reports = []
        for i in range(1, STACK_SIZE + 1):
            name, strength = slots[f"lora_{i}"], slots[f"strength_{i}"]
            if name == NONE or strength == 0:
                continue
            model, clip, report = _apply(model, clip, name, strength, strength)
            reports.append(str(report))
        return (model, clip, "\n".join(reports) or "no LoRA applied")


class LoadAnimateLCMLoRA(Node):
    NODE_ID = "ALCM_LoadAnimateLCMLoRA"
    DISPLAY_NAME = "Load AnimateLCM Spatial LoRA"
    CATEGORY = "AnimateLCM/LoRA"

    @classmethod
    def INPUT_TYPES(cls):
        names = folder_paths.get_filename_list("loras")
        default = next((n for n in names if "animatelcm" in n.lower()), None)
        options = {"tooltip": "AnimateLCM's spatial LoRA in models/loras: AnimateLCM_sd15_t2v_lora.safetensors, or "
                              "AnimateLCM_sd15_i2v_lora.safetensors for image-to-video."}
        if default:
            options["default"] = default
        return {"required": {
            "model": ("MODEL", {"tooltip": "The SD1.5 model (base or personalized) to make few-step capable."}),
            "lora_name": (names, options),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": (
                "1.0 is the official effective strength: 0.8 × 1/8 × up·down on every layer, as AnimateLCM's own "
                "code merges it, whatever alpha the file carries (core LoRA loaders can land it several times too "
                "strong).")}),
        }}

    OUTPUTS = (
        Output("MODEL", "model", "The MODEL that samples in 4 steps: animate it with 'Apply Motion Module'."),
        Output("STRING", "report", "How many of the file's layers were patched (image and text encoder), and any "
                                   "that matched nothing."),
    )
    FUNCTION = "load"
    DESCRIPTION = "Applies AnimateLCM's spatial LCM LoRA at the official strength, so a personalized model samples in 4 steps."

    def load(self, model, lora_name, strength):
        require_finite(self.DISPLAY_NAME, strength=strength)
        model, report = apply_spatial_lora(model, read_state_dict(full_path("loras", lora_name)), lora_name, strength)
        return (model, str(report))
