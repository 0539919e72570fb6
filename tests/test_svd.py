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
    return importlib.import_module(pack.__name__ + ".pipeline.random_svd")


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
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_a_wrong_file_is_refused_with_what_it_is(pack, host, random_svd, kind):
    random_weights = importlib.import_module(pack.__name__ + ".pipeline.random_weights")
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
