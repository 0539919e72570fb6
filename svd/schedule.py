"""The official AnimateLCM-SVD-xt sigmas (animatelcm_svd/animatelcm_scheduler.py with the app's settings).

A consistency schedule on 40 training steps: N steps take every (40 // N)-th point of the Karras ramp
from σ_max 700 to σ_min 0.002 (ρ 7), then 0. ComfyUI's Karras scheduler ramps all the way to σ_min
instead, so its sigmas are not these. The step itself, denoised + σ_next·z with fresh z, is ComfyUI's
`lcm` sampler, and EDM v-prediction with σ_data 1 is ComfyUI's own SVD model sampling.

Denoise below 1 (the official code has none) follows ComfyUI's rule for every scheduler: N steps at
denoise d are the last N of the int(N / d)-step schedule. The official schedule has 40 noise levels
(app.py: num_train_timesteps 40) and its `set_timesteps` refuses more steps than that, so N steps at
denoise d exist only while int(N / d) ≤ 40; beyond that they are refused (cutting the schedule at 40
would quietly start from a higher noise level than d asks for: 40 steps at 0.3 were denoise 1.0).
"""
import torch

SIGMA_MIN, SIGMA_MAX, RHO, TRAINING_STEPS = 0.002, 700.0, 7.0, 40


def svd_sigmas(steps, denoise=1.0):
    """SIGMAS for `steps` steps at `denoise`, ending in 0 (4 steps at 1.0: 700, 128.564, 13.678, 0.4969, 0)."""
    if not 1 <= steps <= TRAINING_STEPS:
        raise ValueError(f"AnimateLCM-SVD-xt takes 1 to {TRAINING_STEPS} steps, not {steps} (4 is recommended).")
    if denoise >= 1.0:
        return _official_sigmas(steps)
    schedule = int(steps / denoise)
    if schedule > TRAINING_STEPS:
        raise ValueError(_too_many_steps(steps, denoise, schedule))
    return _official_sigmas(schedule)[-(steps + 1):]


def _official_sigmas(steps):
    ramp = torch.arange(steps, dtype=torch.float64) * (TRAINING_STEPS // steps) / (TRAINING_STEPS - 1)
    max_inv, min_inv = SIGMA_MAX ** (1 / RHO), SIGMA_MIN ** (1 / RHO)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** RHO
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()


def _too_many_steps(steps, denoise, schedule):
    most = max((n for n in range(1, steps) if int(n / denoise) <= TRAINING_STEPS), default=0)
    lowest = -(-steps * 100 // TRAINING_STEPS) / 100  # rounded up to the denoise widget's 0.01 grid
    fix = f"take at most {most} steps at denoise {denoise:g}, or " if most else ""
    return (f"AnimateLCM-SVD-xt: {steps} steps at denoise {denoise:g} are the last {steps} of a {schedule}-step "
            f"schedule, but the official AnimateLCM-SVD-xt schedule has {TRAINING_STEPS} noise levels, so at most "
            f"{TRAINING_STEPS} steps: {fix}raise denoise to {lowest:g} or more for {steps} steps.")


def is_svd_model(model):
    """Whether a MODEL is a Stable Video Diffusion UNet (ComfyUI's SVD_img2vid, as this pack's loader makes)."""
    import comfy.model_base
    return isinstance(getattr(model, "model", None), comfy.model_base.SVD_img2vid)
