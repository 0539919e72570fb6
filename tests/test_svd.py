"""AnimateLCM-SVD-xt (issue 23): the released diffusers UNet in ComfyUI's own SVD model, the official sigmas
and step, and the files the loader refuses."""
import importlib
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

import stand_ins
from comfy_host import PromptFailed
from fixture_models import RunsCode

pytestmark = pytest.mark.usefixtures("nothing_loaded")

RELEASED_TENSORS, RELEASED_PARAMETERS = 1428, 1_524_623_082  # diffusers 0.31's module for the published config
RELEASED_FILE_BYTES = 6_098_682_464  # AnimateLCM-SVD-xt.safetensors (fp32): the parameters and a ~190 kB header


@pytest.fixture(scope="module")
def random_svd(pack):
    return importlib.import_module(pack.__name__ + ".stand_ins.random_svd")


def on_meta(shapes):
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("width", ["SVD_XT", "NARROW_SVD"])
def test_every_released_key_has_the_name_comfyui_expects(pack, random_svd, width):
    """The published UNetSpatioTemporalConditionModel config → diffusers keys → renamed → ComfyUI detects
    SVD_img2vid, and its model has exactly these keys at exactly these shapes (none missing, none left over)."""
    import comfy.model_base
    import comfy.model_detection
    import comfy.supported_models
    shapes = random_svd.svd_unet_diffusers_shapes(getattr(random_svd, width))
    if width == "SVD_XT":
        parameters = sum(math.prod(s) for s in shapes.values())
        assert (len(shapes), parameters) == (RELEASED_TENSORS, RELEASED_PARAMETERS)
        assert 0 < RELEASED_FILE_BYTES - 4 * parameters < 200_000
    renamed = pack.svd.keys.to_comfy(on_meta(shapes))
    assert len(renamed) == len(shapes)  # a rename: no two keys meet
    config = comfy.model_detection.model_config_from_unet(renamed, "")
    assert type(config) is comfy.supported_models.SVD_img2vid
    assert config.unet_config["channel_mult"] == ([1, 2, 4, 4] if width == "SVD_XT" else [1, 1, 1, 1])
    assert config.unet_config["context_dim"] == 1024 and config.unet_config["adm_in_channels"] == 768
    model = config.get_model(renamed, "", device="meta")
    assert isinstance(model, comfy.model_base.SVD_img2vid)
    expected = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in renamed.items()} == expected


def official_sigmas(steps):
    """animatelcm_scheduler.py set_timesteps with the app's settings (40 training steps, σ 0.002-700, ρ 7), float64."""
    timesteps = [t * (40 // steps) for t in range(steps)]
    rho, lo, hi = 7.0, 0.002 ** (1 / 7.0), 700.0 ** (1 / 7.0)
    return [(hi + t / 39 * (lo - hi)) ** rho for t in timesteps] + [0.0]


@pytest.mark.parametrize("steps", range(1, 9))
def test_sigmas_are_the_official_formula(pack, steps):
    sigmas = pack.svd.schedule.svd_sigmas(steps)
    assert sigmas.dtype == torch.float32 and len(sigmas) == steps + 1
    assert torch.allclose(sigmas.double(), torch.tensor(official_sigmas(steps), dtype=torch.float64), rtol=1e-6)
    published = {2: [700, 13.678, 0], 4: [700, 128.564, 13.678, 0.4969, 0],
                 8: [700, 315.74, 128.56, 45.85, 13.68, 3.167, 0.4969, 0.0398, 0]}
    if steps in published:
        assert sigmas.tolist() == pytest.approx(published[steps], rel=1e-3, abs=1e-4)  # as published: 4 digits


def test_denoise_is_honoured_or_refused(pack):
    """N steps at denoise d: the last N of the official int(N / d)-step schedule (ComfyUI's rule for any
    scheduler), which exists only up to the official 40 steps (animatelcm_scheduler.py set_timesteps raises
    beyond num_train_timesteps); past that a refusal naming the steps, the denoise and what would do, never
    a longer schedule's sigmas in silence (40 steps at 0.3 were the full denoise-1.0 schedule)."""
    svd_sigmas = pack.svd.schedule.svd_sigmas
    for steps in range(1, 41):
        for hundredths in range(1, 100):
            denoise = hundredths / 100
            schedule = int(steps / denoise)
            if schedule <= 40:
                expected = torch.tensor(official_sigmas(schedule)[-(steps + 1):], dtype=torch.float64)
                assert torch.allclose(svd_sigmas(steps, denoise).double(), expected, rtol=1e-6), (steps, denoise)
                continue
            with pytest.raises(ValueError) as refused:
                svd_sigmas(steps, denoise)
            most = max([n for n in range(1, steps) if int(n / denoise) <= 40], default=0)
            lowest = math.ceil(steps * 100 / 40) / 100
            assert f"{steps} steps at denoise {denoise:g}" in str(refused.value)
            assert f"raise denoise to {lowest:g} or more" in str(refused.value)
            assert (f"at most {most} steps" in str(refused.value)) == (most > 0)
            assert int(steps / lowest) <= 40 and (most == 0 or int(most / denoise) <= 40 < int((most + 1) / denoise))
    assert svd_sigmas(4, 0.3).tolist() == pytest.approx(official_sigmas(13)[-5:], rel=1e-6)  # σ 1.599 ... 0.0398, 0
    assert svd_sigmas(4, 1.0).tolist() == pytest.approx(official_sigmas(4), rel=1e-6)


# --- the loader ------------------------------------------------------------------------------------

def load(host, name):
    prompt = {"1": {"class_type": "ALCM_LoadAnimateLCMSVD", "inputs": {"unet_name": name}}}
    return host.run(prompt, want=["1"]).output("1")


@pytest.fixture(scope="module")
def released_layout(host):
    """The narrow random AnimateLCM-SVD-xt in the released diffusers layout, loaded through the node."""
    name = stand_ins.animatelcm_svd_unet(host)
    return name, load(host, name)


def video_unet_inputs(frames=2, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(frames, 8, side, side, generator=g), timesteps=torch.full((frames,), 0.25 * math.log(700)),
                context=torch.randn(frames, 1, 1024, generator=g), y=torch.randn(frames, 768, generator=g),
                num_video_frames=frames, image_only_indicator=torch.zeros(1, frames))


def test_released_layout_loads_into_comfyuis_svd_model_like_comfyuis_layout(pack, host, released_layout, tmp_path):
    import comfy.model_base
    name, model = released_layout
    assert isinstance(model.model, comfy.model_base.SVD_img2vid)
    released = load_file(str(host.models_dir("diffusion_models") / name))
    comfy_layout = "svd_comfy_layout.safetensors"
    save_file(pack.svd.keys.to_comfy(released), str(host.models_dir("diffusion_models") / comfy_layout))
    other = load(host, comfy_layout)
    assert isinstance(other.model, comfy.model_base.SVD_img2vid)
    mine, theirs = model.model.diffusion_model.state_dict(), other.model.diffusion_model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    names = pack.svd.keys.comfy_names(released)  # the file's own tensors, in the model (cast to its dtype)
    assert all(torch.equal(mine[names[k]], v.to(mine[names[k]].dtype)) for k, v in released.items())
    with torch.inference_mode():
        out = model.model.diffusion_model(**video_unet_inputs())
        assert torch.isfinite(out).all() and out.shape == (2, 4, 8, 8)
        assert torch.equal(out, other.model.diffusion_model(**video_unet_inputs()))


def svd_conditioning(frames=2, side=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    extra = {"concat_latent_image": torch.randn(1, 4, side, side, generator=g), "fps": 6, "motion_bucket_id": 80,
             "augmentation_level": 0.0}
    return [[torch.randn(1, 1, 1024, generator=g), extra]]


def test_one_step_equals_the_official_step(pack, released_layout):
    """AnimateLCM Sampler at 1 step, cfg 1 on an SVD MODEL against animatelcm_scheduler.py's step in float64:
    x_T = z·√(σ²+1) (init_noise_sigma); the UNet sees x_T/√(σ²+1) at t = ¼·ln σ; denoised =
    x_T/(σ²+1) − σ/√(σ²+1)·F (σ_data 1); the latent handed to the VAE is denoised / 0.18215."""
    import comfy.sample
    _, model = released_layout
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    seen = []
    hook = model.model.diffusion_model.register_forward_hook(
        lambda module, args, kwargs, out: seen.append((args[0].double(), kwargs.get("timesteps", args[1] if len(args) > 1 else None), out.double())),
        with_kwargs=True)
    try:
        with torch.inference_mode():
            out = pack.samplers.video_sampling.sample_video(model, svd_conditioning(), svd_conditioning(), latent,
                                                            seed=7, steps=1, cfg=1.0)["samples"]
    finally:
        hook.remove()
    assert len(seen) == 1  # cfg 1: one UNet evaluation
    unet_input, timestep, unet_output = seen[0]
    sigma = 700.0
    x_t = comfy.sample.prepare_noise(latent["samples"], 7).double() * math.sqrt(sigma ** 2 + 1)
    assert torch.allclose(unet_input[:, :4], x_t / math.sqrt(sigma ** 2 + 1), atol=1e-5)
    assert torch.allclose(timestep.double(), torch.full((2,), 0.25 * math.log(sigma), dtype=torch.float64), atol=1e-5)
    denoised = x_t / (sigma ** 2 + 1) - sigma / math.sqrt(sigma ** 2 + 1) * unet_output
    assert torch.allclose(out.double(), denoised / 0.18215, rtol=1e-4, atol=1e-4)


def test_samplercustom_with_the_svd_scheduler_and_lcm_equals_the_sampler(pack, released_layout):
    import comfy.sample
    import comfy.samplers
    _, model = released_layout
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    with torch.inference_mode():
        ours = pack.samplers.video_sampling.sample_video(model, svd_conditioning(), svd_conditioning(), latent,
                                                         seed=3, steps=2, cfg=1.0)["samples"]
        sigmas = pack.nodes.svd_nodes.AnimateLCMSVDScheduler().get_sigmas(model, 2)[0]
        custom = comfy.sample.sample_custom(model, comfy.sample.prepare_noise(latent["samples"], 3), 1.0,
                                            comfy.samplers.sampler_object("lcm"), sigmas, svd_conditioning(),
                                            svd_conditioning(), latent["samples"], seed=3)
    assert torch.allclose(ours, custom, atol=1e-5)


def test_svd_scheduler_refuses_an_image_model(pack, tiny_model):
    with pytest.raises(ValueError, match="not Stable Video Diffusion"):
        pack.nodes.svd_nodes.AnimateLCMSVDScheduler().get_sigmas(tiny_model, 4)


def svd_negative(conditioning):
    """What SVD_img2vid_Conditioning gives as negative: zero image embedding, zero image latent."""
    [[pooled, extra]] = conditioning
    return [[torch.zeros_like(pooled), {**extra, "concat_latent_image": torch.zeros_like(extra["concat_latent_image"])}]]


def test_video_linear_cfg_guidance_ramps_per_frame_as_the_official_pipeline(pack, released_layout):
    """Core's Video Linear CFG Guidance (min_cfg 1.0) with the sampler's cfg 1.2 gives frame f of F the official
    scale linspace(1.0, 1.2, F)[f] (animatelcm_svd/app.py: min_guidance_scale 1, max_guidance_scale 1.2;
    animatelcm_svd/pipeline.py step 7: torch.linspace(min_guidance_scale, max_guidance_scale, num_frames) over
    the frames, uncond + scale·(cond − uncond) on the UNet's output). At 1 step the sampler returns the
    denoised latent, which is affine in the UNet's output, so each frame must be uncond + scale_f·(cond − uncond)
    with cond and uncond each from a cfg-1 run."""
    import nodes
    _, model = released_layout
    frames = 5
    latent = {"samples": torch.zeros(frames, 4, 8, 8)}
    positive = svd_conditioning(seed=4)
    negative = svd_negative(positive)
    ramped = nodes.NODE_CLASS_MAPPINGS["VideoLinearCFGGuidance"]().patch(model, 1.0)[0]

    def sample(model, positive, negative, cfg):
        with torch.inference_mode():
            return pack.samplers.video_sampling.sample_video(model, positive, negative, latent, seed=5, steps=1,
                                                             cfg=cfg)["samples"].double()
    cond, uncond = sample(model, positive, negative, 1.0), sample(model, negative, positive, 1.0)
    scale = torch.linspace(1.0, 1.2, frames, dtype=torch.float64).view(frames, 1, 1, 1)
    # cond and uncond in one UNet batch against two runs: float32 rounding of a deep UNet, ~1e-4 here; a ramp
    # off by one frame's step (0.05) would be off by 0.05·|cond − uncond|, 100× more
    ours = sample(ramped, positive, negative, 1.2)
    torch.testing.assert_close(ours, uncond + scale * (cond - uncond), rtol=1e-4, atol=1e-3)
    assert (0.05 * (cond - uncond)).abs().mean() > 0.05
    flat = sample(model, positive, negative, 1.2)  # without the node: 1.2 on every frame
    torch.testing.assert_close(flat, uncond + 1.2 * (cond - uncond), rtol=1e-4, atol=1e-3)


def test_the_sampler_warns_when_svd_guidance_is_one_cfg_for_every_frame(pack, released_layout):
    """cfg above 1 on an SVD MODEL without a per-frame ramp: a warning in the node's UI output (shown by
    web/warnings.js) naming Video Linear CFG Guidance; the official ramp and cfg 1 run without one."""
    import nodes
    _, model = released_layout
    sampler = pack.nodes.sampler_nodes.AnimateLCMSampler()
    positive = svd_conditioning()
    latent = {"samples": torch.zeros(2, 4, 8, 8)}

    def warnings(model, cfg):
        with torch.inference_mode():
            out = sampler.sample(model, positive, svd_negative(positive), latent, 0, 1, cfg, 1.0)
        return out.get("ui", {}).get("animatelcm_warnings", [])
    [warning] = warnings(model, 1.5)
    assert "cfg 1.5 on every frame" in warning and "'Video Linear CFG Guidance' (min_cfg 1.0)" in warning
    assert warnings(nodes.NODE_CLASS_MAPPINGS["VideoLinearCFGGuidance"]().patch(model, 1.0)[0], 1.2) == []
    assert warnings(model, 1.0) == []
    tooltip = sampler.INPUT_TYPES()["required"]["cfg"][1]["tooltip"]
    assert "AnimateLCM-SVD-xt: 1.2 with core 'Video Linear CFG Guidance' (min_cfg 1.0)" in tooltip


def test_the_sampler_refuses_context_windows_on_svd_however_they_came(pack, released_layout):
    """Context options put on an SVD MODEL by other means than the node (which refuses it) are refused by
    the sampler: nothing would window SVD's temporal layers, FreeNoise would only repeat earlier frames' noise."""
    _, model = released_layout
    windowed = model.clone()
    context = pack.motion.context_windows
    windowed.model_options["transformer_options"] = {context.CONTEXT_KEY: context.ContextOptions(8, 2)}
    with pytest.raises(ValueError, match="carries Context Windows"):
        pack.samplers.video_sampling.sample_video(windowed, svd_conditioning(), svd_conditioning(),
                                                  {"samples": torch.zeros(12, 4, 8, 8)}, seed=0, steps=1, cfg=1.0)


def test_context_windows_on_a_model_without_motion_layers_leave_its_noise_alone(pack, tiny_model):
    """Only the motion module's layers run in windows: on a MODEL without them Context Windows change
    nothing, so FreeNoise must not give frames 16.. copies of frames 0..11's noise (at 1 step the video is
    the initial noise's denoised image, frame by frame)."""
    windowed = pack.nodes.context_nodes.ContextWindows().apply(tiny_model, 16, 4, "uniform", False, "pyramid", True)[0]
    generator = torch.Generator().manual_seed(3)
    positive = [[torch.randn(1, 77, 768, generator=generator), {}]]
    latent = {"samples": torch.zeros(24, 4, 8, 8)}
    with torch.inference_mode():
        plain, with_windows = (pack.samplers.video_sampling.sample_video(m, positive, positive, latent, 9, 1, 1.0)
                               ["samples"] for m in (tiny_model, windowed))
    assert torch.equal(with_windows, plain)


# --- what the loader refuses -------------------------------------------------------------------------

def tiny(shapes):
    return {k: torch.zeros(s) for k, s in shapes.items()}


def write_wrong_file(kind, path, random_svd, random_weights):
    if kind == "sd15_unet":
        save_file(tiny(random_weights.unet_shapes(prefix="", ch=(32, 32, 64, 64))), str(path))
    elif kind == "motion_module":
        save_file(random_weights.animatelcm_motion_module(channels=(8, 8, 8, 8)), str(path))
    elif kind == "full_svd_checkpoint":
        sd = {"conditioner.embedders.0.open_clip.model.visual.proj": torch.zeros(4, 4),
              "first_stage_model.decoder.mid.block_1.mix_factor": torch.zeros(1),
              "model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight": torch.zeros(4)}
        save_file(sd, str(path))
    elif kind == "truncated":
        save_file({"conv_in.weight": torch.zeros(320, 8, 3, 3)}, str(path))
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "code_pickle":
        torch.save({"conv_in.weight": torch.zeros(2), "payload": RunsCode(str(path) + ".ran")}, str(path))
    elif kind in ("no_channels", "no_output_channels"):  # random weights in the released layout, one layer empty
        shapes = random_svd.svd_unet_diffusers_shapes(random_svd.NARROW_SVD)
        if kind == "no_channels":  # the UNet's width, which ComfyUI's detection divides by
            shapes["conv_in.weight"], shapes["conv_in.bias"] = (0, 8, 3, 3), (0,)
        else:
            shapes["conv_out.weight"], shapes["conv_out.bias"] = (0, 320, 3, 3), (0,)
        save_file(random_svd.random_weights(shapes), str(path))
    elif kind == "missing_tensors":
        sd = tiny({k: s for k, s in random_svd.svd_unet_diffusers_shapes(random_svd.NARROW_SVD).items()
                   if not k.startswith("up_blocks.3.")})
        save_file(sd, str(path))


REFUSALS = {
    "sd15_unet": ("an image UNet", "no temporal layers"),
    "motion_module": ("motion module", "Load Motion Module"),
    "full_svd_checkpoint": ("full Stable Video Diffusion checkpoint", "Image Only Checkpoint Loader"),
    "truncated": ("corrupt or truncated", "Download it again"),
    "code_pickle": ("asks to run code", ".safetensors"),
    "missing_tensors": ("does not", "AnimateLCM-SVD-xt"),
    "no_channels": ("layers with no channels", "'conv_in.weight' (0, 8, 3, 3)"),
    "no_output_channels": ("layers with no channels", "'conv_out.weight' (0, 320, 3, 3)"),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_wrong_file_is_refused_with_what_it_is(pack, host, random_svd, kind):
    random_weights = importlib.import_module(pack.__name__ + ".stand_ins.random_weights")
    name = f"wrong_{kind}" + (".ckpt" if kind == "code_pickle" else ".safetensors")
    path = host.models_dir("diffusion_models") / name
    write_wrong_file(kind, path, random_svd, random_weights)
    with pytest.raises(PromptFailed) as failed:
        load(host, name)
    for words in REFUSALS[kind]:
        assert words in failed.value.message
    assert "AnimateLCM-SVD-xt.safetensors" in failed.value.message or kind in ("truncated", "code_pickle")
    assert not (host.models_dir("diffusion_models") / (name + ".ran")).exists()


def test_files_are_listed_from_diffusion_models_and_unet(host):
    """Both folders ComfyUI's own UNet loader lists (in a March 2024 ComfyUI, which knows only `unet`, too)."""
    import os

    import folder_paths
    listed = [os.path.normpath(p) for p in folder_paths.get_folder_paths("diffusion_models")]
    for name in ("unet", "diffusion_models"):
        assert os.path.join(os.path.normpath(folder_paths.models_dir), name) in listed


# --- the probe's cases, through ComfyUI's executor ---------------------------------------------------

def load_then(unet_name, class_type, **inputs):
    """Load AnimateLCM-SVD-xt → one node taking its MODEL."""
    return {"1": {"class_type": "ALCM_LoadAnimateLCMSVD", "inputs": {"unet_name": unet_name}},
            "2": {"class_type": class_type, "inputs": {"model": ["1", 0], **inputs}}}


def refusal(host, prompt):
    with pytest.raises(PromptFailed) as failed:
        host.run(prompt, want=list(prompt))
    return failed.value


@pytest.mark.parametrize("class_type,inputs", [("ALCM_ModelSampling", {"mode": "auto"}),
                                               ("ALCM_Scheduler", {"steps": 4, "denoise": 1.0})])
def test_the_sd15_sampling_pieces_refuse_an_svd_model(host, released_layout, class_type, inputs):
    """AnimateLCM Model Sampling + AnimateLCM Scheduler took an SVD MODEL and sampled it with SD1.5's
    timesteps (latents of std 136); the SVD Scheduler already refused the opposite wiring."""
    failed = refusal(host, load_then(released_layout[0], class_type, **inputs))
    assert failed.node_type == class_type
    assert "AnimateLCM-SVD-xt" in failed.message and "'AnimateLCM-SVD Scheduler'" in failed.message


def test_context_windows_refuse_an_svd_model(host, released_layout):
    failed = refusal(host, load_then(released_layout[0], "ALCM_ContextWindows", context_length=16, overlap=4,
                                     schedule="uniform", closed_loop=False, fuse="pyramid", freenoise=True))
    assert failed.node_type == "ALCM_ContextWindows"
    assert "this MODEL is AnimateLCM-SVD-xt" in failed.message and "Remove this node" in failed.message


@pytest.fixture(scope="module")
def image_to_video(pack, host, released_layout):
    """The shipped graph's parts at 2 frames of 64 px on the random stand-ins: svd_xt's CLIP vision and VAE,
    SVD_img2vid_Conditioning (augmentation 0.02), Load AnimateLCM-SVD-xt, optionally Video Linear CFG
    Guidance, the AnimateLCM Sampler. One executor for the module, so the conditioning is computed once."""
    product = importlib.import_module(pack.__name__ + ".stand_ins.files")
    product.write_image(host.input_dir / "svd_start.png", 64)
    checkpoint = stand_ins.svd_checkpoint(host)
    executor = host.executor()

    def run(steps=1, cfg=1.0, denoise=1.0, ramp=False):
        prompt = {
            "1": {"class_type": "ImageOnlyCheckpointLoader", "inputs": {"ckpt_name": checkpoint}},
            "2": {"class_type": "LoadImage", "inputs": {"image": "svd_start.png"}},
            "3": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
                "clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 64, "height": 64,
                "video_frames": 2, "motion_bucket_id": 80, "fps": 7, "augmentation_level": 0.02}},
            "4": {"class_type": "ALCM_LoadAnimateLCMSVD", "inputs": {"unet_name": released_layout[0]}},
            "5": {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["4", 0], "min_cfg": 1.0}},
            "6": {"class_type": "ALCM_Sampler", "inputs": {
                "model": ["5" if ramp else "4", 0], "positive": ["3", 0], "negative": ["3", 1],
                "latent_image": ["3", 2], "seed": 0, "steps": steps, "cfg": cfg, "denoise": denoise, "mode": "auto"}},
        }
        if not ramp:
            del prompt["5"]
        return host.run(prompt, want=["6"], executor=executor)
    return run


def test_the_svd_graph_warns_on_screen_without_the_ramp(image_to_video):
    [warning] = (image_to_video(cfg=1.5).ui("6") or {}).get("animatelcm_warnings", [])
    assert "AnimateLCM-SVD-xt at cfg 1.5 on every frame" in warning
    assert not (image_to_video(cfg=1.2, ramp=True).ui("6") or {}).get("animatelcm_warnings")


def test_the_svd_graph_refuses_more_steps_than_denoise_leaves(image_to_video):
    """40 steps at denoise 0.3 sampled the full denoise-1.0 schedule; now refused by name, and 12 steps
    (the most at 0.3) sample."""
    with pytest.raises(PromptFailed) as failed:
        image_to_video(steps=40, denoise=0.3)
    assert failed.value.node_type == "ALCM_Sampler"
    assert "40 steps at denoise 0.3" in failed.value.message and "at most 12 steps" in failed.value.message
    latent = image_to_video(steps=12, denoise=0.3).output("6")["samples"]
    assert latent.shape == (2, 4, 8, 8) and torch.isfinite(latent).all()


def test_the_loader_says_where_augmentation_differs(pack):
    """The value is set on core's SVD_img2vid_Conditioning, whose tooltip is not ours: the loader's output says it."""
    loader = pack.nodes.svd_nodes.LoadAnimateLCMSVD
    for text in (loader.OUTPUT_TOOLTIPS[0], loader.DESCRIPTION):
        assert "[0, 1]" in text and "twice" in text
