"""End to end in the host: full-size SD1.5 checkpoint + AnimateLCM motion module + sampler → frames."""
import pytest
import torch
from safetensors import safe_open

import stand_ins
from fixture_models import E2E_SIZE, E2E_STEPS, core_t2i_prompt

pytestmark = pytest.mark.slow
MOTION = "AnimateLCM_sd15_t2v.ckpt"
FRAMES = 4


@pytest.fixture(scope="module")
def motion_file(host):
    return stand_ins.motion_module(host, MOTION)


def video_prompt(checkpoint, seed, sampler="ALCM_Sampler", cfg=1.5):
    prompt = core_t2i_prompt(checkpoint, seed, frames=FRAMES, cfg=cfg)
    prompt["10"] = {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": MOTION}}
    prompt["11"] = {"class_type": "ALCM_ApplyMotionModule",
                    "inputs": {"model": ["1", 0], "motion_module": ["10", 0], "strength": 1.0}}
    if sampler == "SamplerCustom":  # the parts for SamplerCustom users
        prompt["12"] = {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["11", 0], "mode": "text-to-video"}}
        prompt["13"] = {"class_type": "ALCM_SamplerSelect", "inputs": {}}
        prompt["14"] = {"class_type": "ALCM_Scheduler", "inputs": {"model": ["12", 0], "steps": E2E_STEPS, "denoise": 1.0}}
        prompt["5"] = {"class_type": "SamplerCustom", "inputs": {
            "model": ["12", 0], "add_noise": True, "noise_seed": seed, "cfg": cfg, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["13", 0], "sigmas": ["14", 0], "latent_image": ["4", 0]}}
    elif sampler == "ALCM_Sampler":
        prompt["5"] = {"class_type": "ALCM_Sampler", "inputs": {
            "model": ["11", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": E2E_STEPS, "cfg": cfg, "denoise": 1.0, "mode": "text-to-video"}}
    else:
        prompt["5"]["inputs"]["model"] = ["11", 0]
    return prompt


def test_animated_and_plain_model_in_one_graph(host, sd15_checkpoint, motion_file):
    prompt = video_prompt(sd15_checkpoint, seed=3, sampler="KSampler")
    plain = core_t2i_prompt(sd15_checkpoint, seed=3, frames=FRAMES)
    prompt.update({"20": dict(plain["5"]), "21": {"class_type": "VAEDecode", "inputs": {"samples": ["20", 0], "vae": ["1", 2]}},
                   "22": {"class_type": "PreviewImage", "inputs": {"images": ["21", 0]}}})
    result = host.run(prompt, want=["6", "21", "1"])
    video, plain_frames = result.output("6"), result.output("21")
    assert video.shape == (FRAMES, E2E_SIZE, E2E_SIZE, 3) and torch.isfinite(video).all()
    assert not torch.equal(video, plain_frames)

    import comfy.model_management
    comfy.model_management.unload_all_models()
    unet = result.output("1", 0).model.diffusion_model
    assert not any(type(m).__name__ == "MotionLayer" for m in unet.modules())
    import folder_paths
    with safe_open(folder_paths.get_full_path("checkpoints", sd15_checkpoint), "pt") as f:
        for name, param in unet.state_dict().items():  # bitwise the file's weights after sampling
            assert torch.equal(param.to(torch.float16), f.get_tensor("model.diffusion_model." + name)), name
    del result, unet  # the run's cache holds its checkpoint: the plain run loads its own, not a second beside it

    alone = host.run(plain, want=["6"], executor=host.fresh_executor()).output("6")
    assert torch.equal(plain_frames, alone)  # the plain branch never saw the motion module


def test_animatelcm_sampler_graph_is_seed_deterministic(host, sd15_checkpoint, motion_file):
    # a fresh executor per run: ComfyUI 0.3.6x+ would otherwise serve the repeated prompt from its cache
    first = host.run(video_prompt(sd15_checkpoint, seed=1), want=["6"], executor=host.fresh_executor()).output("6")
    assert [p[:2] for p in host.progress][-1] == (E2E_STEPS, E2E_STEPS)  # the progress bar reached its end
    other = host.run(video_prompt(sd15_checkpoint, seed=2), want=["6"], executor=host.fresh_executor()).output("6")
    assert first.shape == (FRAMES, E2E_SIZE, E2E_SIZE, 3) and torch.isfinite(first).all()
    assert not torch.equal(first, other)
    # The same seed again, through SamplerCustom and the pack's parts, in a new executor: equal to the first
    # run bit for bit, the run repeats and both ways of sampling agree (one full-size run for both checks).
    again = host.run(video_prompt(sd15_checkpoint, seed=1, sampler="SamplerCustom"), want=["6"],
                     executor=host.fresh_executor()).output("6")
    assert torch.equal(again, first), "seed 1 again (SamplerCustom) differs from the first run (AnimateLCM Sampler)"


def test_too_many_frames_fails_with_the_limit(host, sd15_checkpoint, motion_file):
    import comfy_host
    prompt = video_prompt(sd15_checkpoint, seed=1, cfg=1.0)
    prompt["4"]["inputs"]["batch_size"] = 65
    with pytest.raises(comfy_host.PromptFailed, match="65 frames.*at most 64"):
        host.run(prompt)


def test_personalized_checkpoint_with_spatial_and_style_lora(host, sd15_checkpoint, motion_file):
    """A civitai-style single-file SD1.5 checkpoint + AnimateLCM spatial LoRA + style LoRA + motion module."""
    lcm_lora = stand_ins.make_lora_stand_in(host, "AnimateLCM_sd15_t2v_lora.safetensors")
    style = stand_ins.make_lora_stand_in(host, "my_style.safetensors")
    prompt = video_prompt(sd15_checkpoint, seed=4)
    prompt["30"] = {"class_type": "ALCM_LoadAnimateLCMLoRA", "inputs": {"model": ["1", 0], "lora_name": lcm_lora, "strength": 1.0}}
    prompt["31"] = {"class_type": "ALCM_LoadStyleLoRA", "inputs": {"model": ["30", 0], "clip": ["1", 1], "lora_name": style,
                                                                  "strength_model": 0.8, "strength_clip": 0.8}}
    prompt["11"]["inputs"]["model"] = ["31", 0]
    for text in ("2", "3"):
        prompt[text]["inputs"]["clip"] = ["31", 1]
    result = host.run(prompt, want=["6", "30", "31"])
    video = result.output("6")
    assert video.shape == (FRAMES, E2E_SIZE, E2E_SIZE, 3) and torch.isfinite(video).all()
    assert result.output("30", 1) == f"{lcm_lora}: patched 128 of 128 layers in the file (128 image, 0 text encoder)"
    assert result.output("31", 2) == f"{style}: patched 176 of 176 layers in the file (128 image, 48 text encoder)"
    del result  # its cache holds the checkpoint: the plain run loads its own, not a second beside it
    plain = host.run(video_prompt(sd15_checkpoint, seed=4), want=["6"], executor=host.fresh_executor()).output("6")
    assert not torch.equal(video, plain)
