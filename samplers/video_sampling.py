"""AnimateLCM sampling through ComfyUI's own path (conditioning, ControlNet and model patches all apply)."""
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..motion.control_hints import check_hint_frames, controls_of_conditioning
from ..motion.context_windows import CONTEXT_KEY
from ..motion.image_injection import carries_image, features_once_per_run, is_animated
from ..svd.schedule import is_svd_model, svd_sigmas
from .freeinit import sample_with_freeinit
from .lcm_sampler import sample_animatelcm
from .lightning import LIGHTNING_MODE, LightningSampling
from .lightning_check import lightning_module_on
from .noise import initial_noise
from .schedule import IMAGE_TO_VIDEO, TEXT_TO_VIDEO, AnimateLCMSampling, patch_model

# "auto" reads the MODEL: AnimateDiff-Lightning's recipe for a Lightning module, AnimateLCM-I2V's schedule
# when it carries a start image, else text-to-video's.
MODES = {"auto": None, "text-to-video": TEXT_TO_VIDEO, "image-to-video schedule": IMAGE_TO_VIDEO, LIGHTNING_MODE: None}


def animatelcm_sampler():
    return comfy.samplers.KSAMPLER(sample_animatelcm)


def sampling_for(model, mode="auto"):
    """The model sampling (AnimateLCMSampling or LightningSampling) that `mode` asks for on this MODEL."""
    if mode == "auto":
        mode = (LIGHTNING_MODE if lightning_module_on(model) else
                "image-to-video schedule" if carries_image(model) else "text-to-video")
    return LightningSampling() if mode == LIGHTNING_MODE else AnimateLCMSampling(**MODES[mode])


def sampler_for(sampling):
    """The sampler of `sampling`'s recipe: Euler for AnimateDiff-Lightning, the consistency sampler for AnimateLCM."""
    return comfy.samplers.sampler_object("euler") if isinstance(sampling, LightningSampling) else animatelcm_sampler()


def require_frames_of(latent_frames, **conditionings):
    """Refuse a CONDITIONING whose rows, or whose ControlNet hints, are neither one (1) nor one per frame:
    ComfyUI would tile a shorter one over the batch and cut a longer one (comfy.utils.repeat_to_batch_size,
    comfy.controlnet.broadcast_image_to), without a word."""
    for conditioning in conditionings.values():
        check_hint_frames(controls_of_conditioning(conditioning), latent_frames)
    for name, conditioning in conditionings.items():
        for cond, _ in conditioning:
            if cond.shape[0] not in (1, latent_frames):
                raise ValueError(
                    f"AnimateLCM Sampler: '{name}' holds conditioning for {cond.shape[0]} frames, but latent_image has "
                    f"{latent_frames} frames. Give both the same frame count: connect the same LATENT to the Prompt "
                    f"Schedule's 'latent' input (or set its frames to {latent_frames}), or use one prompt for every "
                    "frame (CLIP Text Encode).")


def sample_video(model, positive, negative, latent, seed, steps, cfg, denoise=1.0, mode="auto", freeinit=None):
    """LATENT in, LATENT out: the official schedule for `steps` and its sampler (AnimateLCM's consistency
    sampler, or AnimateDiff-Lightning's Euler), ComfyUI's CFG;
    with `freeinit` (a samplers.freeinit.FreeInit), that many passes with FreeInit's noise between them."""
    require_frames_of(latent["samples"].shape[0], positive=positive, negative=negative)
    if is_svd_model(model):  # AnimateLCM-SVD-xt: ComfyUI's own SVD sampling, the official sigmas, its lcm step
        if freeinit:
            raise ValueError("AnimateLCM Sampler: FreeInit is for the SD1.5 motion module; remove 'FreeInit Options' "
                             "from an AnimateLCM-SVD-xt graph.")
        if CONTEXT_KEY in model.model_options.get("transformer_options", {}):
            raise ValueError("AnimateLCM Sampler: this AnimateLCM-SVD-xt MODEL carries Context Windows, which window "
                             "the SD1.5 motion module only: SVD's temporal layers would still see every frame. Remove "
                             "'Context Windows (AnimateLCM)' from the graph.")
        sampler, sigmas = comfy.samplers.sampler_object("lcm"), svd_sigmas(steps, denoise)
    else:
        sampling = sampling_for(model, mode)
        model = patch_model(model, sampling)
        sampler, sigmas = sampler_for(sampling), sampling.sigmas_for(steps, denoise)
    latent_image = latent["samples"]
    if hasattr(comfy.sample, "fix_empty_latent_channels"):
        latent_image = comfy.sample.fix_empty_latent_channels(model, latent_image)
    def noise_for_seed(seed):  # FreeNoise's frame map too, when Context Windows window the motion module
        return initial_noise(model.model_options, latent_image, seed, latent.get("batch_index"),
                             windowed=is_animated(model))
    noise = noise_for_seed(seed)
    passes = freeinit.iterations if freeinit else 1
    progress = latent_preview.prepare_callback(model, steps * passes)  # progress bar (and Cancel), latent previews

    def sample(noise, iteration=0):
        def callback(step, x0, x, total_steps):  # one bar over every pass
            progress(iteration * total_steps + step, x0, x, passes * total_steps)
        return comfy.sample.sample_custom(
            model, noise, cfg, sampler, sigmas, positive, negative, latent_image,
            noise_mask=latent.get("noise_mask"), callback=callback,
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)

    with features_once_per_run():  # an I2V MODEL's image features: computed at the first step, dropped after
        if passes > 1:
            samples = sample_with_freeinit(freeinit, sample, model, noise, noise_for_seed, seed, sigmas[0], denoise)
        else:
            samples = sample(noise)
    out = latent.copy()
    out["samples"] = samples
    return out
