"""Noise samplers for the consistency sampler's re-noising (the k-diffusion `noise_sampler` contract).

A noise sampler is built for one sampling run from the latent and the seed, and called as
`noise_sampler(sigma, sigma_next)` for the fresh noise of each step. Its generator is seeded one
past the prompt's seed, so step noise is independent of the initial noise (ComfyUI's own `lcm`
re-uses the initial noise's generator state for its first re-noise).
"""
import torch

SEED_RANGE = 2 ** 64  # ComfyUI's seed widgets and torch.Generator.manual_seed both take 0 .. 2**64 - 1


def step_noise_sampler(x, seed=0):
    """Gaussian noise shaped like `x`, drawn in float32 on the CPU so every device gives the same video."""
    # seed + 1 wraps to 0 at the widget's maximum (2**64 - 1), which torch's manual_seed cannot take;
    # every other seed keeps its noise.
    generator = torch.Generator().manual_seed((seed + 1) % SEED_RANGE)

    def noise_sampler(sigma, sigma_next):
        return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x)
    return noise_sampler
