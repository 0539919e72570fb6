"""AnimateDiff-Lightning: its files recognised with their step counts, its schedule and Euler step against the
model card's recipe (selfcheck/oracles.py), and the warnings when a graph leaves that recipe."""
import os

import numpy as np
import pytest
import torch

import stand_ins
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import conditioning
from fixture_selfcheck import models, oracles

pytestmark = pytest.mark.usefixtures("nothing_loaded")

PUBLISHED_SIZE = {"comfyui": 908929664, "diffusers": 907702248}  # bytes, the model repository's LFS pointers


@pytest.fixture(scope="module")
def lightning(pack):
    return pack.samplers.lightning


# --- the schedule -----------------------------------------------------------------------------------

def test_timesteps_are_the_trailing_ones(lightning):
    assert lightning.lightning_timesteps(1) == [999]
    assert lightning.lightning_timesteps(2) == [999, 499]
    assert lightning.lightning_timesteps(4) == [999, 749, 499, 249]
    assert lightning.lightning_timesteps(8) == [999, 874, 749, 624, 499, 374, 249, 124]
    for steps in (1, 2, 3, 4, 8):
        for denoise in (1.0, 0.75, 0.5):
            if int(steps * denoise):
                assert lightning.lightning_timesteps(steps, denoise) == oracles.lightning_timesteps(steps, denoise)
    assert lightning.lightning_timesteps(4, 0.6) == [499, 249]  # diffusers' video-to-video: the last int(4·0.6) steps


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_sigmas_equal_the_formula_on_animatediffs_linear_betas(lightning, steps):
    sampling = lightning.LightningSampling()
    sigmas = sampling.sigmas_for(steps)
    np.testing.assert_allclose(sigmas.double().numpy(), oracles.lightning_sigmas(steps), rtol=2e-6)
    assert sampling.timestep(sigmas[:-1]).tolist() == oracles.lightning_timesteps(steps)  # what the UNet is told
    scaled_linear = np.cumprod(1 - np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2)  # SD1.5's own: not this
    assert abs(float(sigmas[0]) - ((1 - scaled_linear[999]) / scaled_linear[999]) ** 0.5) > 10


def test_a_denoise_that_keeps_no_step_is_refused(lightning):
    with pytest.raises(ValueError, match="raise denoise to at least 0.25"):
        lightning.lightning_timesteps(4, 0.2)


@pytest.mark.parametrize("steps", [2, 4, 8])
def test_comfyuis_sgm_uniform_is_trailing_shifted_by_i_over_n(lightning, steps):
    """What users run in ComfyUI (euler + sgm_uniform) against the recipe: t = 999·(1 − i/N), i/N above trailing's."""
    import comfy.samplers
    sampling = lightning.LightningSampling()
    if hasattr(comfy.samplers, "calculate_sigmas"):  # ComfyUI 0.3.x: the scheduler takes the model sampling
        sgm = comfy.samplers.calculate_sigmas(sampling, "sgm_uniform", steps)
    else:  # March 2024: the model
        sgm = comfy.samplers.calculate_sigmas_scheduler(type("Model", (), {"model_sampling": sampling}), "sgm_uniform", steps)
    trailing = oracles.lightning_timesteps(steps)
    shifted = [t + i / steps for i, t in enumerate(trailing)]
    np.testing.assert_allclose(sgm[:-1].numpy(), sampling.sigma(torch.tensor(shifted)).numpy(), rtol=1e-5)
    told = sampling.timestep(sgm[:-1]).tolist()  # the UNet gets the nearest whole t: one above trailing's past i/N = 1/2
    assert [t for i, t in enumerate(told) if 2 * i != steps] == \
        [t + (2 * i > steps) for i, t in enumerate(trailing) if 2 * i != steps]  # (at i/N = 1/2 a tie)
    assert np.all(sgm[1:-1].numpy() > sampling.sigmas_for(steps)[1:-1].numpy())  # every σ after the first: noisier


# --- sampling, against the model card's pipeline in float64 ---------------------------------------------

def tiny_lightning_module(pack, folder, name="animatediff_lightning_4step_comfyui.safetensors"):
    path = folder / name
    save_safetensors(motion_state_dict("v2", TINY_CHANNELS), path)
    return pack.motion.motion_module.load_motion_module(str(path))


@pytest.fixture
def lightning_model(pack, host, tmp_path):
    """The analytic UNet (closed-form ε) animated by a tiny module named as Lightning's 4-step file."""
    model, unet = models.analytic_model()
    return pack.motion.injection.animate(model, tiny_lightning_module(pack, tmp_path)), unet


@pytest.mark.parametrize("steps,cfg,denoise", [(1, 1.0, 1.0), (4, 1.0, 1.0), (8, 1.0, 1.0), (4, 1.5, 1.0), (4, 1.0, 0.5)])
def test_sampling_equals_the_model_cards_pipeline(pack, lightning_model, steps, cfg, denoise):
    model, unet = lightning_model
    seed, frames = 9, 3
    latent = torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(2)) if denoise < 1 else \
        torch.zeros(frames, 4, 4, 4)
    with torch.inference_mode():
        out = pack.samplers.video_sampling.sample_video(
            model, conditioning(0.2), conditioning(-0.1), {"samples": latent}, seed, steps, cfg, denoise)["samples"]
    noise, _ = oracles.seeded_noise(latent.shape, seed, 0)

    def eps_of(x, t, positive, step):
        return oracles.analytic_eps(x, t, 0.2 if positive else -0.1)
    expected = oracles.lightning_loop(latent.double() * oracles.SD15_LATENT_SCALE, noise, steps, cfg, eps_of, denoise)
    torch.testing.assert_close(out.double() * oracles.SD15_LATENT_SCALE, expected, atol=2e-5, rtol=2e-5)
    assert len(unet.calls) == int(steps * denoise)  # one UNet call a step (cond and uncond batched together)


def test_samplercustom_with_our_parts_equals_the_all_in_one_node(pack, lightning_model):
    import comfy_extras.nodes_custom_sampler as custom
    model, _ = lightning_model
    nodes = pack.nodes.sampler_nodes
    latent = {"samples": torch.zeros(2, 4, 4, 4)}
    with torch.inference_mode():
        patched = nodes.AnimateLCMModelSampling().patch(model, "auto")[0]
        sigmas = nodes.LightningScheduler().get_sigmas(patched, 4, 1.0)[0]
        euler = custom.KSamplerSelect().get_sampler("euler")[0]
        custom_out = custom.SamplerCustom().sample(patched, True, 11, 1.0, conditioning(0.2), conditioning(-0.1),
                                                   euler, sigmas, latent)[0]["samples"]
        ours = nodes.AnimateLCMSampler().sample(model, conditioning(0.2), conditioning(-0.1), latent, 11, 4, 1.0, 1.0)
    assert "ui" not in ours  # the recipe: no warning (and no AnimateLCM spatial-LoRA one: Lightning has none)
    assert torch.equal(custom_out, ours["result"][0]["samples"])
    with pytest.raises(ValueError, match="AnimateDiff-Lightning Scheduler"):
        nodes.AnimateLCMScheduler().get_sigmas(patched, 4, 1.0)
    with pytest.raises(ValueError, match="AnimateLCM Model Sampling"):
        nodes.LightningScheduler().get_sigmas(model, 4, 1.0)


# --- warnings on screen when a graph leaves the recipe ---------------------------------------------------

def _warnings(result):
    return result.get("ui", {}).get("animatelcm_warnings", []) if isinstance(result, dict) else []


def test_a_step_count_other_than_the_files_is_sampled_with_a_warning_naming_both(pack, lightning_model):
    model, unet = lightning_model
    nodes = pack.nodes.sampler_nodes
    with torch.inference_mode():
        result = nodes.AnimateLCMSampler().sample(model, conditioning(0.2), conditioning(-0.1),
                                                  {"samples": torch.zeros(2, 4, 4, 4)}, 0, 8, 1.0, 1.0)
        sigmas_result = nodes.LightningScheduler().get_sigmas(
            nodes.AnimateLCMModelSampling().patch(model, "auto")[0], 2, 1.0)
    [warning] = _warnings(result)
    assert "distilled for 4 steps, and steps is 8" in warning and "animatediff_lightning_8step_comfyui" in warning
    assert len(unet.calls) == 8  # still sampled, on Lightning's 8-step schedule
    [warning] = _warnings(sigmas_result)
    assert "AnimateDiff-Lightning Scheduler" in warning and "distilled for 4 steps, and steps is 2" in warning


def test_another_modules_recipe_set_by_hand_is_warned_about(pack, host, lightning_model, tmp_path):
    model, _ = lightning_model
    check = pack.samplers.lightning_check.recipe_warnings
    [warning] = check(model, 4, "text-to-video")
    assert "AnimateLCM's schedule" in warning and "Set mode to auto" in warning
    assert check(model, 4, "AnimateDiff-Lightning") == check(model, 4, "auto") == []
    path = tmp_path / "AnimateLCM_sd15_t2v.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY_CHANNELS), path)
    animatelcm = pack.motion.injection.animate(models.tiny_sd15_model(),
                                               pack.motion.motion_module.load_motion_module(str(path)))
    [warning] = check(animatelcm, 4, "AnimateDiff-Lightning")
    assert "AnimateLCM_sd15_t2v.safetensors" in warning and "Set mode to auto" in warning
    assert pack.samplers.video_sampling.sampling_for(animatelcm, "auto").__class__.__name__ == "AnimateLCMSampling"


# --- which files are Lightning's ---------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("animatediff_lightning_1step_comfyui.safetensors", (True, 1)),
    ("animatediff_lightning_8step_diffusers.safetensors", (True, 8)),
    ("animatediff-lightning-4steps-1.5.safetensors", (True, 4)),  # a rename seen in the wild
    ("AnimateDiff Lightning 2 step.safetensors", (True, 2)),
    ("my_lightning_motion.safetensors", (True, None)),  # Lightning, step count unknown: the sampler's steps
    ("mm_sd_v15_v2.safetensors", (False, None)),
])
def test_the_name_tells_lightning_and_its_step_count(pack, tmp_path, name, expected):
    path = tmp_path / name
    save_safetensors(motion_state_dict("v2", TINY_CHANNELS), path)
    module = pack.motion.motion_module.load_motion_module(str(path))
    assert (module.format.family == "AnimateDiff-Lightning", module.format.distilled_steps) == expected


def test_a_lightning_name_on_another_layout_is_not_lightning(pack, tmp_path):
    path = tmp_path / "animatediff_lightning_4step_comfyui.safetensors"
    save_safetensors(motion_state_dict("v3", TINY_CHANNELS), path)  # no mid block: v3's layout, not Lightning's
    assert pack.motion.motion_module.load_motion_module(str(path)).format.family == "AnimateDiff v3"


def test_a_renamed_file_is_known_by_its_size_and_sha256(pack, tmp_path):
    lightning = pack.motion.lightning
    path = tmp_path / "favourite_motion.safetensors"
    save_safetensors(motion_state_dict("v2", TINY_CHANNELS), path)
    published = {(os.path.getsize(path), lightning.sha256_of(str(path))): (2, "comfyui")}  # as if ByteDance's
    assert lightning.lightning_steps(str(path), published) == (True, 2)
    assert lightning.lightning_steps(str(path)) == (False, None)  # not one of the eight published files
    other_size = {(os.path.getsize(path) + 1, "0" * 64): (2, "comfyui")}
    assert lightning.lightning_steps(str(path), other_size) == (False, None)  # another size: never hashed


@pytest.mark.slow
@pytest.mark.parametrize("form", ["comfyui", "diffusers"])
def test_the_published_layouts_are_recognised_with_each_step_count(pack, host, tmp_path, form):
    """The stand-ins have the published files' exact key sets and shapes (their size is the published one, to
    the byte); linked under each published name, each loads as Lightning with that name's step count."""
    import folder_paths
    cached = folder_paths.get_full_path("animatediff_models", stand_ins.motion_module(
        host, f"animatediff_lightning_4step_{form}.safetensors"))
    assert os.path.getsize(cached) == PUBLISHED_SIZE[form]
    load = pack.motion.motion_module.load_motion_module
    for steps in (1, 2, 4, 8):
        link = tmp_path / f"animatediff_lightning_{steps}step_{form}.safetensors"
        link.symlink_to(cached)
        module = load(str(link))
        assert (module.format.family, module.format.distilled_steps, module.max_frames) == ("AnimateDiff-Lightning", steps, 32)
        assert len(module.positions()) == 21 and module.format.converted_from_diffusers == (form == "diffusers")
    layer = module.build_layers(torch.float32)["mid_block.motion_modules.0"]
    table = layer.temporal_transformer.transformer_blocks[0].attention_blocks[1].pos_encoder.encoding(32, torch.zeros(()))
    assert torch.equal(table, models.position_table(32, 1280).half().float())  # the file's own (fp16) table, in both layouts
    renamed = tmp_path / "renamed.safetensors"
    renamed.symlink_to(cached)
    module = load(str(renamed))  # the published size: hashed, and (random weights) not one of the published files
    assert module.format.family == ("AnimateDiff (diffusers MotionAdapter)" if form == "diffusers" else "AnimateDiff v2")
