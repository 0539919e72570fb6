"""AnimateLCM's parametrisation as a ComfyUI model-sampling object (docs/maths.md#sampling).

- betas linspace(0.00085, beta_end, 1000): diffusers' "linear", ComfyUI's "sqrt_linear" (ComfyUI's
  own "linear" is diffusers' scaled_linear, which SD1.5 checkpoints use, a different schedule);
- the sigma grid is the official timesteps [1..ots]·k − 1, k = 1000 // ots (ots = original inference
  steps: 100 for text-to-video; 200 with beta_end 0.014 for image-to-video);
- ε-prediction with the consistency boundary condition (timestep scaling 10, σ_data 0.5).
ComfyUI's own LCM classes fix ots at 50 on the checkpoint's betas, which is not this model.
"""
import math
from types import SimpleNamespace

import torch
from comfy.model_sampling import EPS, ModelSamplingDiscrete

TEXT_TO_VIDEO = {"original_inference_steps": 100, "beta_end": 0.012}
IMAGE_TO_VIDEO = {"original_inference_steps": 200, "beta_end": 0.014}
TIMESTEP_SCALING = 10.0
SIGMA_DATA = 0.5


def timesteps_for(steps, original_inference_steps=100, denoise=1.0):
    """The official LCM timesteps for `steps` steps (diffusers LCMScheduler.set_timesteps, with strength=denoise)."""
    k = 1000 // original_inference_steps
    grid = [t * k - 1 for t in range(int(original_inference_steps * denoise), 0, -1)]
    if steps > len(grid):
        raise ValueError(f"{steps} steps need denoise of at least {steps / original_inference_steps:.2f}: "
                         f"only {len(grid)} timesteps lie below it on the {original_inference_steps}-step grid.")
    return [grid[math.floor(i * len(grid) / steps)] for i in range(steps)]


class AnimateLCMSampling(EPS, ModelSamplingDiscrete):
    def __init__(self, original_inference_steps=100, beta_end=0.012):
        settings = {"beta_schedule": "sqrt_linear", "linear_start": 0.00085, "linear_end": beta_end}
        super().__init__(SimpleNamespace(sampling_settings=settings))
        self.original_inference_steps = original_inference_steps
        self.skip_steps = self.num_timesteps // original_inference_steps
        self.set_sigmas(self.sigmas[self.skip_steps - 1::self.skip_steps].clone())  # t = k-1, 2k-1, ..., 999

    def timestep(self, sigma):
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return (dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + self.skip_steps - 1).to(sigma.device)

    def sigma(self, timestep):
        index = ((timestep.float().to(self.log_sigmas.device) - (self.skip_steps - 1)) / self.skip_steps)
        index = index.clamp(0, len(self.sigmas) - 1)
        low, high, w = index.floor().long(), index.ceil().long(), index.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp().to(timestep.device)

    def sigmas_for(self, steps, denoise=1.0):
        """SIGMAS for the official timesteps, ending in 0."""
        timesteps = torch.tensor(timesteps_for(steps, self.original_inference_steps, denoise), dtype=torch.float32)
        return torch.cat([self.sigma(timesteps), torch.zeros(1)])

    def calculate_denoised(self, sigma, model_output, model_input):
        # ComfyUI samples in the variance-exploding form x = x_t / √ᾱ_t, σ = √((1-ᾱ)/ᾱ); the official
        # scheduler works on x_t itself. The model's x0 is the same in both: x0 = x − σ·ε.
        shape = sigma.shape[:1] + (1,) * (model_output.ndim - 1)
        scaled_t = self.timestep(sigma).to(model_input.dtype).view(shape) * TIMESTEP_SCALING
        sigma = sigma.view(shape)
        x0 = model_input - model_output * sigma
        x_t = model_input / (1 + sigma ** 2).sqrt()
        c_skip = SIGMA_DATA ** 2 / (scaled_t ** 2 + SIGMA_DATA ** 2)
        c_out = scaled_t / (scaled_t ** 2 + SIGMA_DATA ** 2).sqrt()
        return c_out * x0 + c_skip * x_t


def patch_model(model, sampling):
    """A clone of the MODEL that samples with `sampling` (an AnimateLCMSampling)."""
    patched = model.clone()
    patched.add_object_patch("model_sampling", sampling)
    return patched


def model_sampling_of(model):
    """The model sampling patched onto this MODEL (how this pack's are set: patch_model), or None. The shared
    model's own attribute is not read: a ComfyUI of 2024 leaves another clone's patches on it after a run."""
    return model.object_patches.get("model_sampling")


def animatelcm_sampling_of(model):
    sampling = model_sampling_of(model)
    return sampling if isinstance(sampling, AnimateLCMSampling) else None
