"""AnimateLCM-SVD-xt's classifier-free guidance: the official app ramps it per frame.

animatelcm_svd/app.py samples with min_guidance_scale 1 and max_guidance_scale 1.2, and its pipeline
(animatelcm_svd/pipeline.py, step 7, as diffusers' StableVideoDiffusionPipeline) gives frame f of F the
scale linspace(min, max, F)[f]: 1.0 on the first frame (the start image), 1.2 on the last. ComfyUI's
Video Linear CFG Guidance does the same with linspace(min_cfg, cfg, frames) over the latent batch, one
video's frames. Without it every frame gets the sampler's cfg.
"""

# The core nodes that put a per-frame ramp on the MODEL (ModelPatcher.set_model_sampler_cfg_function);
# their functions are local to the node's method, so the function's qualified name names the node.
PER_FRAME_RAMPS = ("VideoLinearCFGGuidance.", "VideoTriangleCFGGuidance.")


def has_per_frame_ramp(model):
    """Whether the MODEL's guidance is ramped per frame by a core video guidance node."""
    cfg_function = model.model_options.get("sampler_cfg_function")
    return getattr(cfg_function, "__qualname__", "").startswith(PER_FRAME_RAMPS)


def flat_guidance_warning(model, cfg):
    """The warning for cfg above 1 on every frame alike, or None."""
    if cfg <= 1.0 or has_per_frame_ramp(model):
        return None
    return (f"AnimateLCM-SVD-xt at cfg {cfg:g} on every frame: the official app ramps guidance per frame, from 1.0 on "
            "the first frame to 1.2 on the last. Put core 'Video Linear CFG Guidance' (min_cfg 1.0) between 'Load "
            "AnimateLCM-SVD-xt' and the sampler and set cfg 1.2, as animatelcm_svd_xt_i2v.json does; or set cfg 1.0 "
            "(no guidance, one UNet pass per step).")
