"""The AnimateLCM sampler against the official formulas, inside ComfyUI's real sampling path."""
import math

import numpy as np
import pytest
import torch

from fixture_models import tiny_sd15_model
from fixture_sampling import conditioning
from fixture_selfcheck import models, oracles

SD15_LATENT_SCALE = oracles.SD15_LATENT_SCALE
official_timesteps = oracles.official_timesteps  # diffusers LCMScheduler.set_timesteps, written out (selfcheck/oracles.py)


def test_timesteps_match_the_published_values(pack):
    timesteps_for = pack.samplers.schedule.timesteps_for
    assert timesteps_for(4) == [999, 749, 499, 249]
    assert timesteps_for(6) == [999, 839, 669, 499, 339, 169]
    for steps in range(1, 9):
        assert timesteps_for(steps) == official_timesteps(steps), steps
        assert timesteps_for(steps, 200) == official_timesteps(steps, 200), steps
        assert timesteps_for(steps, 100, 0.6) == official_timesteps(steps, 100, 0.6), steps


def test_sigmas_are_the_official_timesteps_on_the_official_betas(pack):
    sampling = pack.samplers.schedule.AnimateLCMSampling()
    sigmas = sampling.sigmas_for(4)
    alphas_cumprod = np.cumprod(1 - np.linspace(0.00085, 0.012, 1000))
    expected = [math.sqrt((1 - alphas_cumprod[t]) / alphas_cumprod[t]) for t in (999, 749, 499, 249)] + [0.0]
    np.testing.assert_allclose(sigmas.numpy(), expected, rtol=1e-5)
    assert sampling.timestep(sigmas[:4]).tolist() == [999, 749, 499, 249]


def official_loop(latent, noise, step_noise, timesteps, cfg, text_pos, text_neg, strength):
    """AnimateLCM's text-to-video loop in float64 (the self-check's oracle) around the analytic UNet's ε."""
    def eps_of(x, t, positive, step):
        return oracles.analytic_eps(x, t, text_pos if positive else text_neg)
    return oracles.official_loop(latent, noise, step_noise, timesteps, cfg, eps_of, strength=strength)


@pytest.fixture
def analytic_model(host):
    """A tiny SD1.5 MODEL whose UNet has a closed-form ε (selfcheck/models.py), and that UNet."""
    return models.analytic_model()


@pytest.mark.parametrize("steps", [1, 2, 4, 6])
@pytest.mark.parametrize("cfg", [1.0, 1.5, 2.5])
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_full_loop_equals_the_official_scheduler(pack, analytic_model, steps, cfg, denoise):
    model, _ = analytic_model
    seed, frames = 123, 3
    generator = torch.Generator().manual_seed(7)
    latent = torch.randn(frames, 4, 4, 4, generator=generator) if denoise < 1 else torch.zeros(frames, 4, 4, 4)
    with torch.inference_mode():
        out = pack.samplers.video_sampling.sample_video(
            model, conditioning(0.2), conditioning(-0.1), {"samples": latent}, seed, steps, cfg, denoise)["samples"]
    noise = torch.randn(latent.shape, generator=torch.manual_seed(seed)).double()  # comfy.sample.prepare_noise
    step_generator = torch.Generator().manual_seed(seed + 1)
    step_noise = [torch.randn(latent.shape, generator=step_generator).double() for _ in range(steps)]
    expected = official_loop(latent.double() * SD15_LATENT_SCALE, noise, step_noise,
                             official_timesteps(steps, 100, denoise), cfg, 0.2, -0.1, denoise)
    torch.testing.assert_close(out.double() * SD15_LATENT_SCALE, expected, atol=1e-5, rtol=1e-5)  # float32 sampling vs a float64 oracle


@pytest.mark.parametrize("cfg,passes", [(1.0, 1), (1.5, 2)])
def test_cfg_one_skips_the_negative_pass(pack, analytic_model, cfg, passes):
    model, unet = analytic_model
    with torch.inference_mode():
        pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
            model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(5, 4, 4, 4)}, 0, 4, cfg, 1.0)
    assert sum(unet.calls) == 4 * 5 * passes


def test_same_seed_same_video_other_seed_other_video(pack, host):
    model = tiny_sd15_model()
    node = pack.nodes.sampler_nodes.AnimateLCMSampler()

    def run(seed):
        with torch.inference_mode():
            return node.sample(model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(2, 4, 8, 8)},
                               seed, 4, 1.5, 1.0)["result"][0]["samples"]
    first, again, other = run(5), run(5), run(6)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.isfinite(first).all()


def test_samplercustom_with_our_parts_equals_the_all_in_one_node(pack, analytic_model):
    import comfy_extras.nodes_custom_sampler as custom
    model, _ = analytic_model
    nodes = pack.nodes.sampler_nodes
    latent = {"samples": torch.zeros(3, 4, 4, 4)}
    with torch.inference_mode():
        patched = nodes.AnimateLCMModelSampling().patch(model, "text-to-video")[0]
        sigmas = nodes.AnimateLCMScheduler().get_sigmas(patched, 4, 1.0)[0]
        sampler = nodes.AnimateLCMSamplerSelect().get_sampler()[0]
        custom_out = custom.SamplerCustom().sample(patched, True, 11, 1.5, conditioning(0.2), conditioning(-0.1),
                                                   sampler, sigmas, latent)[0]["samples"]
        ours = nodes.AnimateLCMSampler().sample(model, conditioning(0.2), conditioning(-0.1), latent, 11, 4, 1.5, 1.0)["result"][0]
    assert torch.equal(custom_out, ours["samples"])


def test_scheduler_refuses_a_model_without_the_animatelcm_schedule(pack, host):
    with pytest.raises(ValueError, match="AnimateLCM Model Sampling"):
        pack.nodes.sampler_nodes.AnimateLCMScheduler().get_sigmas(tiny_sd15_model(), 4, 1.0)


def test_cancel_stops_the_sampler_promptly_and_leaves_the_model(pack, analytic_model):
    import comfy.model_management
    model, unet = analytic_model
    options_before = dict(model.model_options)
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException), torch.inference_mode():
            pack.nodes.sampler_nodes.AnimateLCMSampler().sample(
                model, conditioning(0.2), conditioning(-0.1), {"samples": torch.zeros(2, 4, 4, 4)}, 0, 8, 1.0, 1.0)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(unet.calls) <= 1
    assert model.model_options == options_before and "model_sampling" not in model.object_patches
