"""FreeNoise: the frame map, the initial noise and every step's fresh noise; same seed, same video."""
import pytest
import torch

from fixture_models import TINY_CHANNELS, tiny_sd15_model
from fixture_motion import motion_state_dict, save_safetensors
from fixture_selfcheck import oracles


@pytest.fixture(scope="module")
def noise(pack):
    return pack.samplers.noise


# FreeNoise as its paper and AnimateDiff-Evolved describe it, written independently (the self-check's oracle)
freenoise_in_place = oracles.freenoise_in_place


@pytest.mark.parametrize("frames,length,overlap,seed", [(40, 16, 4, 0), (64, 16, 4, 7), (37, 8, 2, 3),
                                                        (256, 16, 4, 11), (50, 16, 8, 5), (16, 16, 4, 0)])
def test_frame_map_equals_an_independent_implementation(noise, frames, length, overlap, seed):
    plain = torch.randn(frames, 4, 2, 2, generator=torch.Generator().manual_seed(seed + 100))
    frame_map = noise.freenoise_frame_map(frames, length, overlap, seed)
    assert torch.equal(plain[torch.tensor(frame_map)], freenoise_in_place(plain, length, overlap, seed))
    assert frame_map[:length] == list(range(min(length, frames)))  # the first window keeps its own noise
    delta = length - overlap
    for start in range(0, frames - length, delta):  # each later block repeats a shuffle of an earlier one
        place = start + length
        block = frame_map[place:place + delta]
        assert sorted(block) == sorted(frame_map[start:start + len(block)])


def test_initial_and_step_noise_follow_the_map(pack, noise, host):
    cw = pack.motion.context_windows
    opts = cw.ContextOptions(context_length=16, overlap=4, freenoise=True)
    model_options = {"transformer_options": {cw.CONTEXT_KEY: opts}}
    latent = torch.zeros(40, 4, 8, 8)
    frame_map = torch.tensor(noise.freenoise_frame_map(40, 16, 4, seed=9))
    plain = noise.initial_noise({}, latent, 9)
    assert torch.equal(noise.initial_noise(model_options, latent, 9), plain[frame_map])
    mapped = noise.noise_sampler_for(latent, {"seed": 9, "model_options": model_options})
    unmapped = noise.noise_sampler_for(latent, {"seed": 9})
    steps = []
    for _ in range(3):  # every step: fresh noise, mapped the same way
        a, b = mapped(1.0, 0.5), unmapped(1.0, 0.5)
        assert torch.equal(a, b[frame_map])
        steps.append(a)
    assert not torch.equal(steps[0], steps[1])
    off = {"transformer_options": {cw.CONTEXT_KEY: cw.ContextOptions(freenoise=False)}}
    assert torch.equal(noise.initial_noise(off, latent, 9), plain)
    assert torch.equal(noise.initial_noise(model_options, latent[:16], 9), plain[:16])  # one window: no shuffle


def test_same_seed_same_long_video(pack, host, tmp_path):
    import comfy.model_management
    path = tmp_path / "module.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY_CHANNELS), path)
    model = pack.motion.injection.animate(tiny_sd15_model(), pack.motion.motion_module.load_motion_module(str(path)))
    model = pack.nodes.context_nodes.ContextWindows().apply(model, 8, 2, "uniform", False, "pyramid", True)[0]
    generator = torch.Generator().manual_seed(1)
    positive = [[torch.randn(1, 77, 768, generator=generator), {}]]
    negative = [[torch.randn(1, 77, 768, generator=generator), {}]]
    latent = {"samples": torch.zeros(14, 4, 8, 8)}

    def render(seed):
        with torch.inference_mode():
            out = pack.samplers.video_sampling.sample_video(model, positive, negative, latent, seed, 2, 1.0)
        comfy.model_management.unload_all_models()
        return out["samples"]
    first = render(5)
    assert torch.equal(render(5), first)
    assert not torch.allclose(render(6), first)
