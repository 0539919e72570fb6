"""Sampling a video through ComfyUI's own sample_custom with the pack's sampler, from given noise."""
import torch


def one_step_sample(pack, model, noise, positive, negative, steps=1, cfg=1.0, seed=0):
    """LATENT samples from `noise` (one latent per frame) on the official AnimateLCM schedule for `steps`."""
    import comfy.sample
    sampling = pack.samplers.schedule.AnimateLCMSampling()
    patched = pack.samplers.schedule.patch_model(model, sampling)
    with torch.inference_mode():
        return comfy.sample.sample_custom(
            patched, noise, cfg, pack.samplers.video_sampling.animatelcm_sampler(), sampling.sigmas_for(steps),
            positive, negative, torch.zeros_like(noise), disable_pbar=True, seed=seed)
