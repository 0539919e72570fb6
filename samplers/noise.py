"""Noise samplers for the consistency sampler's re-noising (the k-diffusion `noise_sampler` contract).

A noise sampler is built for one sampling run from the latent and the seed, and called as
`noise_sampler(sigma, sigma_next)` for the fresh noise of each step. Its generator is seeded one
past the prompt's seed, so step noise is independent of the initial noise (ComfyUI's own `lcm`
re-uses the initial noise's generator state for its first re-noise).

FreeNoise (arXiv 2310.15169, §3.2 "noise rescheduling"): with context windows of L frames and
overlap O (Δ = L - O), the noise of frames [s+L, s+L+Δ) is a seeded shuffle of the noise of frames
[s, s+Δ), for s = 0, Δ, 2Δ... in order (so a later window may copy frames that were themselves
copies). Each window then starts from a permutation of noise the model has already seen, and
distant windows agree on content. The same frame map applies to the initial noise and, for the
consistency sampler, to the fresh noise of every step (AnimateDiff-Evolved maps the initial noise only).
"""
import torch

from ..motion.context_windows import CONTEXT_KEY

SEED_RANGE = 2 ** 64  # ComfyUI's seed widgets and torch.Generator.manual_seed both take 0 .. 2**64 - 1


def freenoise_frame_map(frames, context_length, overlap, seed):
    """source[f]: the frame of plain noise that frame f takes (identity when one window covers the video)."""
    source = list(range(frames))
    delta = context_length - overlap
    if frames <= context_length or delta <= 0:
        return source
    generator = torch.Generator().manual_seed(seed % SEED_RANGE)
    for start in range(0, frames - context_length, delta):
        place = start + context_length
        count = min(delta, frames - place)
        shuffled = torch.randperm(count, generator=generator).tolist()
        for k in range(count):
            source[place + k] = source[start + shuffled[k]]
    return source


def freenoise_map_of(model_options, frames, seed):
    """The FreeNoise frame map the MODEL's context options ask for, or None."""
    context = (model_options or {}).get("transformer_options", {}).get(CONTEXT_KEY)
    if context is None or not context.freenoise or frames <= context.context_length:
        return None
    return freenoise_frame_map(frames, context.context_length, context.overlap, seed)


def initial_noise(model_options, latent_image, seed, batch_index=None, windowed=True):
    """ComfyUI's seeded initial noise for the latent, FreeNoise-mapped when the MODEL's context options ask for it
    and its UNet calls are `windowed` (a MODEL without motion layers ignores context options: FreeNoise would
    only give later frames copies of earlier frames' noise)."""
    import comfy.sample
    noise = comfy.sample.prepare_noise(latent_image, seed, batch_index)
    frame_map = freenoise_map_of(model_options, noise.shape[0], seed) if windowed else None
    return noise if frame_map is None else noise[torch.tensor(frame_map)]


def step_noise_sampler(x, seed=0, frame_map=None):
    """Gaussian noise shaped like `x`, drawn in float32 on the CPU so every device gives the same video.

    With a FreeNoise `frame_map`, each step's noise is drawn for every frame and then mapped.
    """
    # seed + 1 wraps to 0 at the widget's maximum (2**64 - 1), which torch's manual_seed cannot take;
    # every other seed keeps its noise.
    generator = torch.Generator().manual_seed((seed + 1) % SEED_RANGE)
    index = None if frame_map is None else torch.tensor(frame_map, dtype=torch.long)

    def noise_sampler(sigma, sigma_next):
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return (noise if index is None else noise[index]).to(x)
    return noise_sampler


def noise_sampler_for(x, extra_args):
    """The step-noise sampler of a run: FreeNoise-mapped when the MODEL's context options ask for it."""
    seed = extra_args.get("seed", 0)
    return step_noise_sampler(x, seed, freenoise_map_of(extra_args.get("model_options"), x.shape[0], seed))
