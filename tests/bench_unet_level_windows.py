"""A ComfyUI custom node for `tests/bench_controlnet.py` only (never part of the pack): the pack's Context Windows
without their conditioning-level wrappers, so the same graph runs with the UNet-level windows the pack used before
(and still uses in ComfyUI without the CALC_COND_BATCH hook): the ControlNet then runs on every frame at once."""
import comfy.patcher_extension

PACK_WRAPPER_KEY = "animatelcm_context_windows"  # motion/windowed_conditioning.py WRAPPER_KEY


class UNetLevelWindows:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"
    CATEGORY = "benchmark"

    def apply(self, model):
        model = model.clone()
        for kind in (comfy.patcher_extension.WrappersMP.CALC_COND_BATCH, comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING):
            model.remove_wrappers_with_key(kind, PACK_WRAPPER_KEY)
        return (model,)


NODE_CLASS_MAPPINGS = {"Bench_UNetLevelWindows": UNetLevelWindows}
