"""AnimateLCM sampling through ComfyUI's own path (conditioning, ControlNet and model patches all apply)."""
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from .lcm_sampler import sample_animatelcm
from .schedule import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, AnimateLCMSampling, patch_model

MODES = {"text-to-video": TEXT_TO_VIDEO, "image-to-video": IMAGE_TO_VIDEO}


def animatelcm_sampler():
    return comfy.samplers.KSAMPLER(sample_animatelcm)


def sample_video(model, positive, negative, latent, seed, steps, cfg, denoise=1.0, mode="text-to-video"):
    """LATENT in, LATENT out: the official schedule for `steps`, the consistency sampler, ComfyUI's CFG."""
    sampling = AnimateLCMSampling(**MODES[mode])
    model = patch_model(model, sampling)
    sigmas = sampling.sigmas_for(steps, denoise)
    latent_image = latent["samples"]
    if hasattr(comfy.sample, "fix_empty_latent_channels"):
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent_image)
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model, steps)  # progress bar (and Cancel), latent previews
    samples = comfy.sample.sample_custom(
        model, noise, cfg, animatelcm_sampler(), sigmas, positive, negative, latent_image,
        noise_mask=latent.get("noise_mask"), callback=callback,
        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out = latent.copy()
    out["samples"] = samples
    return out
