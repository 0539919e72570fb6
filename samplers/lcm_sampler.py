"""The few-step consistency sampler of AnimateLCM (arXiv 2402.00769; LCM, arXiv 2310.04378, Alg. 1)."""
import torch
from tqdm.auto import trange

from .noise import step_noise_sampler


@torch.no_grad()
def sample_animatelcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """Multistep consistency sampling: predict the clean sample, then re-noise it to the next timestep
    with fresh noise. The boundary condition lives in the model sampling (samplers/schedule.py), so
    `model` already returns the consistency function's output."""
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        noise_sampler = step_noise_sampler(x, extra_args.get("seed", 0))
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)  # official steps 1-5: ε → x0 → c_out·x0 + c_skip·x_t
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:  # official step 7, every step but the last: x_prev = √ᾱ·x0 + √(1-ᾱ)·z, here /√ᾱ
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x
