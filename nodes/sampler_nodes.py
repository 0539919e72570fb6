"""Sampler nodes: the all-in-one AnimateLCM sampler, and the parts for SamplerCustom users."""
import logging

from ..samplers.lightning import LightningSampling
from ..samplers.lightning_check import recipe_warnings
from ..samplers.schedule import animatelcm_sampling_of, model_sampling_of, patch_model
from ..samplers.spatial_lora_check import missing_spatial_lora
from ..samplers.video_sampling import (
    MODES,
    animatelcm_sampler,
    sample_video,
    sampling_for,
)
from ..svd.guidance import flat_guidance_warning
from ..svd.schedule import is_svd_model
from .declare import Node, Output
from .inputs import require_finite

log = logging.getLogger(__name__)

MODE_TOOLTIP = ("Which official schedule to sample with. auto (recommended): AnimateDiff-Lightning's recipe when the "
                "motion module is Lightning's, AnimateLCM-I2V's when the MODEL comes from 'AnimateLCM Image to Video', "
                "otherwise text-to-video's. text-to-video: AnimateLCM t2v's (100 original steps, beta_end 0.012). "
                "image-to-video schedule: AnimateLCM-I2V's (200 original steps, beta_end 0.014) on any MODEL; it takes "
                "no image: the image comes from 'AnimateLCM Image to Video'. AnimateDiff-Lightning: ByteDance's recipe "
                "(Euler, 'trailing' timesteps on AnimateDiff's linear betas), for a Lightning file the loader did not "
                "recognise (renamed and re-saved). An AnimateLCM-SVD-xt MODEL always samples with its own schedule "
                "(σ 700 → 0.002, ComfyUI's lcm step).")
STEPS_TOOLTIP = ("4 is the recommended AnimateLCM setting; 6-8 add detail; 1-2 give a soft draft. More than 8 "
                 "rarely helps a consistency model. AnimateDiff-Lightning: the step count of the file (4 for "
                 "animatediff_lightning_4step_*); another count is sampled, with a warning.")
CFG_TOOLTIP = ("1.5 with a negative prompt is recommended for text-to-video; 1.0 for image-to-video and "
               "AnimateDiff-Lightning (the official settings). 1.0 skips the negative pass (half the time); above 2 "
               "burns the image. AnimateLCM-SVD-xt: 1.2 with core 'Video Linear CFG Guidance' (min_cfg 1.0) before "
               "the sampler, the official app's ramp from 1.0 on the first frame to 1.2 on the last; without that "
               "node every frame gets this cfg (the sampler warns), or use 1.0.")
SVD_HERE = ("this MODEL is AnimateLCM-SVD-xt (Stable Video Diffusion), which has its own schedule: sample it with the "
            "all-in-one 'AnimateLCM Sampler', or with SamplerCustom + 'AnimateLCM-SVD Scheduler' + KSamplerSelect "
            "(lcm).")


class AnimateLCMSampler(Node):
    NODE_ID = "ALCM_Sampler"
    DISPLAY_NAME = "AnimateLCM Sampler"
    CATEGORY = "AnimateLCM"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The animated MODEL (after 'Apply Motion Module'), or AnimateLCM-SVD-xt's "
                                           "(from 'Load AnimateLCM-SVD-xt'); any image model works too."}),
            "positive": ("CONDITIONING", {"tooltip": "What the video shows."}),
            "negative": ("CONDITIONING", {"tooltip": "What to avoid; used only when cfg is above 1."}),
            "latent_image": ("LATENT", {"tooltip": "One latent per frame: Empty Latent Image with batch_size = frames "
                                                   "(16 is AnimateLCM's training length), or encoded video frames."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "The same seed gives the same video."}),
            "steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip": STEPS_TOOLTIP}),
            "cfg": ("FLOAT", {"default": 1.5, "min": 1.0, "max": 10.0, "step": 0.1, "round": 0.01,
                              "tooltip": CFG_TOOLTIP}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                                  "tooltip": "1.0 starts from noise. Below 1 starts from the input latent noised to the "
                                             "matching timestep (video-to-video): lower keeps more of the input. "
                                             "AnimateDiff-Lightning runs the last steps × denoise of its steps (as "
                                             "diffusers' video-to-video pipeline), so its distilled timesteps are kept."}),
            "mode": (list(MODES), {"default": "auto", "tooltip": MODE_TOOLTIP}),
        }, "optional": {
            "freeinit": ("FREEINIT", {"tooltip": "From 'FreeInit Options': several passes for more consistent motion "
                                                 "(costs one sampling per pass). Leave empty for one pass."}),
            "warn_without_spatial_lora": ("BOOLEAN", {"default": True, "tooltip": (
                "Warn (in the log and on screen) when an AnimateLCM motion module samples a MODEL that did not go "
                "through 'Load AnimateLCM Spatial LoRA': AnimateLCM is the module and that LoRA, and without it "
                "4-step videos come out blurry. Turn off only if your checkpoint has the LoRA merged in.")}),
        }}

    OUTPUTS = (
        Output("LATENT", None, "The video's latents, one per frame: decode with VAE Decode."),
    )
    FUNCTION = "sample"
    DESCRIPTION = ("Samples a video in 4 steps with AnimateLCM's official schedule and consistency sampler; an "
                   "AnimateDiff-Lightning module with ByteDance's recipe (Euler, its file's step count); an "
                   "AnimateLCM-SVD-xt MODEL with its own official sigmas and ComfyUI's lcm step (cfg 1.2 after Video "
                   "Linear CFG Guidance, min_cfg 1.0, as the official app).")

    def sample(self, model, positive, negative, latent_image, seed, steps, cfg, denoise, mode="auto",
               freeinit=None, warn_without_spatial_lora=True):
        require_finite(self.DISPLAY_NAME, cfg=cfg, denoise=denoise)
        warnings = [missing_spatial_lora(model) if warn_without_spatial_lora else None,
                    flat_guidance_warning(model, cfg) if is_svd_model(model) else None] + recipe_warnings(model, steps, mode)
        warnings = [warning for warning in warnings if warning]
        for warning in warnings:
            log.warning("%s", warning)
        result = (sample_video(model, positive, negative, latent_image, seed, steps, cfg, denoise, mode, freeinit=freeinit),)
        # warnings go out as the node's UI output: the pack's web/warnings.js shows them on screen
        return {"result": result, "ui": {"animatelcm_warnings": warnings}} if warnings else {"result": result}


class AnimateLCMModelSampling(Node):
    NODE_ID = "ALCM_ModelSampling"
    DISPLAY_NAME = "AnimateLCM Model Sampling"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The MODEL to sample with AnimateLCM's parametrisation."}),
            "mode": (list(MODES), {"default": "auto", "tooltip": MODE_TOOLTIP}),
        }}

    OUTPUTS = (
        Output("MODEL", None, "The MODEL on AnimateLCM's schedule: for SamplerCustom with the AnimateLCM Sampler and Scheduler."),
    )
    FUNCTION = "patch"
    DESCRIPTION = ("Makes a MODEL sample with AnimateLCM's official schedule and boundary condition, for SamplerCustom "
                   "with the AnimateLCM sampler and scheduler; an AnimateDiff-Lightning module (mode auto) with "
                   "Lightning's betas, for SamplerCustom with euler and the AnimateDiff-Lightning Scheduler. The "
                   "all-in-one AnimateLCM Sampler does this itself.")

    def patch(self, model, mode):
        if is_svd_model(model):  # SD1.5 timesteps on an SVD UNet sample without an error, and give noise
            raise ValueError(f"AnimateLCM Model Sampling is AnimateLCM SD1.5's schedule, but {SVD_HERE}")
        return (patch_model(model, sampling_for(model, mode)),)


class AnimateLCMSamplerSelect(Node):
    NODE_ID = "ALCM_SamplerSelect"
    DISPLAY_NAME = "AnimateLCM Sampler (for SamplerCustom)"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    OUTPUTS = (
        Output("SAMPLER", None, "Connect to SamplerCustom's sampler input."),
    )
    FUNCTION = "get_sampler"
    DESCRIPTION = "AnimateLCM's consistency sampler (fresh seeded noise between steps), for SamplerCustom."

    def get_sampler(self):
        return (animatelcm_sampler(),)


class AnimateLCMScheduler(Node):
    NODE_ID = "ALCM_Scheduler"
    DISPLAY_NAME = "AnimateLCM Scheduler"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "A MODEL patched by 'AnimateLCM Model Sampling'."}),
            "steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip": STEPS_TOOLTIP}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                                  "tooltip": "Below 1: only the timesteps under denoise·1000 (video-to-video)."}),
        }}

    OUTPUTS = (
        Output("SIGMAS", None, "Connect to SamplerCustom's sigmas input (with the AnimateLCM Sampler)."),
    )
    FUNCTION = "get_sigmas"
    DESCRIPTION = "The official AnimateLCM timesteps for N steps (4 steps: 999, 749, 499, 249) as SIGMAS."

    def get_sigmas(self, model, steps, denoise):
        require_finite(self.DISPLAY_NAME, denoise=denoise)
        if is_svd_model(model):
            raise ValueError(f"AnimateLCM Scheduler gives AnimateLCM SD1.5's timesteps, but {SVD_HERE}")
        sampling = animatelcm_sampling_of(model)
        if isinstance(model_sampling_of(model), LightningSampling):
            raise ValueError("This MODEL samples with AnimateDiff-Lightning's recipe (its motion module is "
                             "Lightning's): use 'AnimateDiff-Lightning Scheduler' and the euler sampler instead.")
        if sampling is None:
            raise ValueError("This MODEL does not sample with AnimateLCM's schedule. Put "
                             "'AnimateLCM Model Sampling' between the model and SamplerCustom, or use the all-in-one "
                             "'AnimateLCM Sampler'.")
        return (sampling.sigmas_for(steps, denoise),)


class LightningScheduler(Node):
    NODE_ID = "ALCM_LightningScheduler"
    DISPLAY_NAME = "AnimateDiff-Lightning Scheduler"
    CATEGORY = "AnimateLCM/sampling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "A MODEL with an AnimateDiff-Lightning module, patched by 'AnimateLCM Model "
                                           "Sampling' (mode auto or AnimateDiff-Lightning)."}),
            "steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip": "The step count of the Lightning file (4 "
                                                                           "for animatediff_lightning_4step_*)."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01,
                                  "tooltip": "Below 1: the last steps × denoise of the steps (video-to-video)."}),
        }}

    OUTPUTS = (
        Output("SIGMAS", None, "Connect to SamplerCustom's sigmas input (with KSamplerSelect → euler)."),
    )
    FUNCTION = "get_sigmas"
    DESCRIPTION = ("AnimateDiff-Lightning's timesteps for N steps ('trailing': 4 steps are 999, 749, 499, 249) as SIGMAS, "
                   "for SamplerCustom with the euler sampler. ComfyUI's sgm_uniform is close, not equal (see docs).")

    def get_sigmas(self, model, steps, denoise):
        require_finite(self.DISPLAY_NAME, denoise=denoise)
        sampling = model_sampling_of(model)
        if not isinstance(sampling, LightningSampling):
            raise ValueError("This MODEL does not sample with AnimateDiff-Lightning's betas, so these sigmas would "
                             "land on the wrong timesteps. Put 'AnimateLCM Model Sampling' (mode auto, or "
                             "AnimateDiff-Lightning) between the animated model and SamplerCustom, or use the "
                             "all-in-one 'AnimateLCM Sampler'.")
        sigmas = sampling.sigmas_for(steps, denoise)
        warnings = recipe_warnings(model, steps, node="AnimateDiff-Lightning Scheduler")
        for warning in warnings:
            log.warning("%s", warning)
        return {"result": (sigmas,), "ui": {"animatelcm_warnings": warnings}} if warnings else (sigmas,)
