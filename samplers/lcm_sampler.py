"""The few-step consistency sampler of AnimateLCM (arXiv 2402.00769; LCM, arXiv 2310.04378, Alg. 1)."""
import torch
from tqdm.auto import trange

from .noise import noise_sampler_for


@torch.no_grad()
def sample_animatelcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """Multistep consistency sampling: predict the clean sample, then re-noise it to the next timestep
    with fresh noise. The boundary condition lives in the model sampling (samplers/schedule.py), so
    `model` already returns the consistency function's output."""
    extra_args = with_sample_sigmas({} if extra_args is None else extra_args, sigmas)
    if noise_sampler is None:
        noise_sampler = noise_sampler_for(x, extra_args)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)  # official steps 1-5: ε → x0 → c_out·x0 + c_skip·x_t
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if sigmas[i + 1] > 0:  # official step 7, every step but the last: x_prev = √ᾱ·x0 + √(1-ᾱ)·z, here /√ᾱ
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


def with_sample_sigmas(extra_args, sigmas):
    """extra_args whose model options name the run's sigmas (ComfyUI >= 0.3.4x does this itself), so
    context windows know which step a UNet call belongs to in every ComfyUI. Nothing passed in is changed."""
    model_options = extra_args.get("model_options")
    if model_options is None or "sample_sigmas" in model_options.get("transformer_options", {}):
        return extra_args
    transformer_options = {**model_options.get("transformer_options", {}), "sample_sigmas": sigmas}
    return {**extra_args, "model_options": {**model_options, "transformer_options": transformer_options}}
