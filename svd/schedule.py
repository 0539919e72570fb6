"""The official AnimateLCM-SVD-xt sigmas (animatelcm_svd/animatelcm_scheduler.py with the app's settings).

A consistency schedule on 40 training steps: N steps take every (40 // N)-th point of the Karras ramp
from σ_max 700 to σ_min 0.002 (ρ 7), then 0. ComfyUI's Karras scheduler ramps all the way to σ_min
instead, so its sigmas are not these. The step itself, denoised + σ_next·z with fresh z, is ComfyUI's
`lcm` sampler, and EDM v-prediction with σ_data 1 is ComfyUI's own SVD model sampling.
"""
import torch

SIGMA_MIN, SIGMA_MAX, RHO, TRAINING_STEPS = 0.002, 700.0, 7.0, 40


def svd_sigmas(steps):
    """SIGMAS for `steps` steps, ending in 0 (4 steps: 700, 128.564, 13.678, 0.4969, 0)."""
    if not 1 <= steps <= TRAINING_STEPS:
        raise ValueError(f"AnimateLCM-SVD-xt takes 1 to {TRAINING_STEPS} steps, not {steps} (4 is recommended).")
    ramp = torch.arange(steps, dtype=torch.float64) * (TRAINING_STEPS // steps) / (TRAINING_STEPS - 1)
    max_inv, min_inv = SIGMA_MAX ** (1 / RHO), SIGMA_MIN ** (1 / RHO)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** RHO
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()


def is_svd_model(model):
    """Whether a MODEL is a Stable Video Diffusion UNet (ComfyUI's SVD_img2vid, as this pack's loader makes)."""
    import comfy.model_base
    return isinstance(getattr(model, "model", None), comfy.model_base.SVD_img2vid)
