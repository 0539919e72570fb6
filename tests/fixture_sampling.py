"""Sampling a video through ComfyUI's own sample_custom with the pack's sampler, from given noise."""
import torch

from fixture_models import tiny_sd15_model


def conditioning(value):
    """CONDITIONING whose text embedding is `value` everywhere (what the analytic UNets of the tests read)."""
    return [[torch.full((1, 77, 768), value), {}]]


def model_around(unet):
    """A tiny SD1.5 MODEL whose diffusion model is `unet` (an object patch: ComfyUI's own wrapping runs)."""
    model = tiny_sd15_model().clone()
    model.add_object_patch("diffusion_model", unet)
    return model


def one_step_sample(pack, model, noise, positive, negative, steps=1, cfg=1.0, seed=0):
    """LATENT samples from `noise` (one latent per frame) on the official AnimateLCM schedule for `steps`."""
    import comfy.sample
    sampling = pack.samplers.schedule.AnimateLCMSampling()
    patched = pack.samplers.schedule.patch_model(model, sampling)
    with torch.inference_mode():
        return comfy.sample.sample_custom(
            patched, noise, cfg, pack.samplers.video_sampling.animatelcm_sampler(), sampling.sigmas_for(steps),
            positive, negative, torch.zeros_like(noise), disable_pbar=True, seed=seed)


def denoise(model, x, context, cond_or_uncond, sigma=3.0, extra_options=None):
    """One UNet call the way ComfyUI's sampler makes it: through the model wrapper, chunks batched, the
    MODEL's transformer_options (Context Windows') passed on, with `extra_options` on top."""
    import comfy.model_management
    comfy.model_management.load_models_gpu([model])
    chunks = len(cond_or_uncond)
    transformer_options = {**model.model_options.get("transformer_options", {}), "cond_or_uncond": cond_or_uncond,
                           **(extra_options or {})}
    args = {"input": x.repeat(chunks, 1, 1, 1), "timestep": torch.full((x.shape[0] * chunks,), sigma),
            "c": {"c_crossattn": context.repeat(chunks, 1, 1), "transformer_options": transformer_options},
            "cond_or_uncond": cond_or_uncond}
    wrapper = model.model_options.get("model_function_wrapper")
    with torch.inference_mode():
        if wrapper is None:
            return model.model.apply_model(args["input"], args["timestep"], **args["c"])
        return wrapper(model.model.apply_model, args)
