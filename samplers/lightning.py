"""AnimateDiff-Lightning's sampling (arXiv 2403.12706) as a ComfyUI model-sampling object.

The recipe is the model card's (huggingface.co/ByteDance/AnimateDiff-Lightning, "Diffusers Usage"):
`EulerDiscreteScheduler.from_config(<an SD1.5 model's scheduler config>, timestep_spacing="trailing",
beta_schedule="linear")`, `guidance_scale=1.0`, `num_inference_steps` = the file's step count:
- betas linspace(0.00085, 0.012, 1000): diffusers' "linear", ComfyUI's "sqrt_linear", the schedule
  AnimateDiff v2 (the module Lightning is distilled from) was trained on; not SD1.5's own scaled_linear;
- timesteps "trailing": round(1000 − i·1000/N) − 1, so 4 steps are 999, 749, 499, 249, at the grid's
  σ_t = √((1 − ᾱ_t)/ᾱ_t) (integer t: diffusers' interpolation is exact there), then σ = 0;
- ε-prediction and the Euler step (ComfyUI's `euler`, k-diffusion's sample_euler: the same update as
  diffusers' EulerDiscreteScheduler.step with its defaults, s_churn 0);
- the starting latent σ_0·z (+ the input below denoise 1): diffusers' init_noise_sigma is σ_max for
  "trailing" spacing, and its add_noise is x + σ·z. ComfyUI would scale pure noise by √(1 + σ_max²);
  at σ_max ≈ 25.1 that is 0.08% more (noise_scaling below keeps diffusers' σ).
ComfyUI's `sgm_uniform` on this model sampling differs from "trailing": it spaces t = 999·(1 − i/N), i/N
above trailing's t (749.25 against 749 at 4 steps), so σ is read between grid points and the UNet gets
the nearest whole t, one above trailing's where i/N > 1/2 (250 against 249).
Below denoise 1, diffusers' AnimateDiffVideoToVideoPipeline keeps the last int(N·denoise) of the N steps
(get_timesteps): the distilled grid is kept, fewer steps run.
"""
from types import SimpleNamespace

import torch
from comfy.model_sampling import EPS, ModelSamplingDiscrete

LIGHTNING_MODE = "AnimateDiff-Lightning"  # the samplers' mode that asks for this recipe
TRAIN_TIMESTEPS = 1000
BETAS = {"beta_schedule": "sqrt_linear", "linear_start": 0.00085, "linear_end": 0.012}


def lightning_timesteps(steps, denoise=1.0):
    """diffusers' "trailing" timesteps for `steps`; below denoise 1, the last int(steps·denoise) of them."""
    ratio = TRAIN_TIMESTEPS / steps
    timesteps = [round(TRAIN_TIMESTEPS - i * ratio) - 1 for i in range(steps)]
    kept = min(int(steps * denoise), steps)
    if kept < 1:
        raise ValueError(f"denoise {denoise:g} keeps none of the {steps} AnimateDiff-Lightning steps (it runs the last "
                         f"int(steps x denoise) of them): raise denoise to at least {1 / steps:.2f}, or raise steps.")
    return timesteps[steps - kept:]


class LightningSampling(EPS, ModelSamplingDiscrete):
    def __init__(self):
        super().__init__(SimpleNamespace(sampling_settings=BETAS))

    def sigmas_for(self, steps, denoise=1.0):
        """SIGMAS at the trailing timesteps, ending in 0."""
        timesteps = torch.tensor(lightning_timesteps(steps, denoise), dtype=torch.long)
        return torch.cat([self.sigmas[timesteps], torch.zeros(1)])

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        # diffusers: pure noise is z·init_noise_sigma = z·σ_max for "trailing"; a partial denoise x + z·σ
        if sigma.ndim:
            sigma = sigma.view(sigma.shape[:1] + (1,) * (noise.ndim - 1))
        return sigma.to(noise.dtype) * noise + latent_image
