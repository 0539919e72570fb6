"""The checks that a motion module samples with its own recipe: AnimateDiff-Lightning's or AnimateLCM's.

A distilled module sampled with another module's schedule gives mush, and no error says why (random or
real weights both still render). The sampler follows the module by itself in mode auto; these say so
on screen when a graph asks for something else: a step count other than the one a Lightning file was
distilled for (allowed: ByteDance find 3 steps good on the 2-step file), or a mode set by hand to the
other module's recipe.
"""
from ..motion.injection import motion_wrapper_on
from ..motion.lightning import LIGHTNING_FAMILY
from .lightning import LIGHTNING_MODE

ANIMATELCM_MODES = ("text-to-video", "image-to-video schedule")
PUBLISHED_STEPS = (1, 2, 4, 8)


def lightning_module_on(model):
    """The MotionWrapper of the AnimateDiff-Lightning module on `model`, or None."""
    wrapper = motion_wrapper_on(model)
    return wrapper if wrapper is not None and wrapper.family == LIGHTNING_FAMILY else None


def recipe_warnings(model, steps, mode="auto", node="AnimateLCM Sampler"):
    """The warnings for a MODEL whose motion module would not sample with its own recipe: a list, maybe empty."""
    wrapper = motion_wrapper_on(model)
    if wrapper is None:
        return []
    if wrapper.family != LIGHTNING_FAMILY:
        if mode == LIGHTNING_MODE and wrapper.family.startswith("AnimateLCM"):
            return [f"{node}: mode '{LIGHTNING_MODE}' samples '{wrapper.module_name}' ({wrapper.family}) with "
                    "AnimateDiff-Lightning's schedule and Euler, which AnimateLCM was not distilled for: expect "
                    "mush. Set mode to auto (AnimateLCM's own schedule)."]
        return []
    warnings = []
    if mode in ANIMATELCM_MODES:
        warnings.append(f"{node}: mode '{mode}' samples the AnimateDiff-Lightning module '{wrapper.module_name}' "
                        "with AnimateLCM's schedule and consistency sampler, which Lightning was not distilled for: "
                        f"expect mush. Set mode to auto (or '{LIGHTNING_MODE}').")
    distilled = wrapper.distilled_steps
    if distilled and steps != distilled:
        other_file = (f", or load animatediff_lightning_{steps}step_comfyui.safetensors" if steps in PUBLISHED_STEPS
                      else "")
        warnings.append(f"{node}: '{wrapper.module_name}' is AnimateDiff-Lightning distilled for {distilled} "
                        f"step{'s' * (distilled != 1)}, and steps is {steps}. Set steps to {distilled} for "
                        f"ByteDance's recipe{other_file}. (Other counts run on Lightning's schedule too, but the "
                        "file was not distilled for them.)")
    return warnings
