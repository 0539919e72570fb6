"""Bad input, as a careless or hostile user sends it through ComfyUI's executor, ends in a clear
refusal that names the file or input and the fix, or in a correct result (issue 15)."""
import pytest
import torch

import stand_ins
from comfy_host import PromptFailed

MAX_SEED = 0xffffffffffffffff  # the seed widget's maximum


@pytest.fixture(scope="module")
def checkpoint(host):
    return stand_ins.narrow_sd15_checkpoint(host)


def text_to_video(checkpoint, seed, sampler="ALCM_Sampler", frames=2):
    """Checkpoint → prompts → empty latents → a sampler (the all-in-one node, or SamplerCustom with ours)."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox running", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
    }
    if sampler == "ALCM_Sampler":
        prompt["5"] = {"class_type": "ALCM_Sampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": 2, "cfg": 1.0, "denoise": 1.0, "mode": "text-to-video"}}
    else:
        prompt["6"] = {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["1", 0], "mode": "text-to-video"}}
        prompt["7"] = {"class_type": "ALCM_SamplerSelect", "inputs": {}}
        prompt["8"] = {"class_type": "ALCM_Scheduler", "inputs": {"model": ["6", 0], "steps": 2, "denoise": 1.0}}
        prompt["5"] = {"class_type": "SamplerCustom", "inputs": {
            "model": ["6", 0], "add_noise": True, "noise_seed": seed, "cfg": 1.0, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["4", 0]}}
    return prompt


# --- 1. the largest seed ---------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["ALCM_Sampler", "SamplerCustom"])
def test_the_largest_seed_samples_and_is_deterministic(host, checkpoint, sampler):
    executor = host.executor()

    def run(seed):
        latent = host.run(text_to_video(checkpoint, seed, sampler), want=["5"], executor=executor).output("5")
        return latent["samples"].clone()
    largest, again, other = run(MAX_SEED), run(MAX_SEED), run(MAX_SEED - 1)
    assert torch.isfinite(largest).all()
    assert torch.equal(largest, again)
    assert not torch.equal(largest, other)


def test_seeds_below_the_largest_keep_their_step_noise(pack):
    """Mapping the largest seed into torch's range changes no other seed's video."""
    x = torch.zeros(2, 4, 2, 2)
    for seed in (0, 5, MAX_SEED - 1):
        expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
        assert torch.equal(pack.samplers.noise.step_noise_sampler(x, seed)(1.0, 0.5), expected)
