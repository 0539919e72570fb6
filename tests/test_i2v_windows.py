"""Image-to-video on long videos: each window's UNet call gets the start image's features of its own frames."""
from types import SimpleNamespace

import pytest
import torch

import stand_ins
from fixture_i2v import reference_encoder
from fixture_models import NARROW_CHANNELS, TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import denoise

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded


def tiny_module(pack, tmp_path):
    path = tmp_path / "animatelcm_i2v.safetensors"
    save_safetensors(motion_state_dict("animatelcm_i2v", TINY_CHANNELS), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def i2v_model(pack, model, module, frames, references=1, motion_scale=0.8):
    reference = torch.randn(references, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    node = pack.nodes.i2v_nodes.ImageToVideo()
    conditioned, _ = node.apply(model, module, None, None, 64, 64, frames, motion_scale,
                                reference_latent={"samples": reference})
    return conditioned, reference


def windowed(pack, model, length, overlap, schedule="static"):
    return pack.nodes.context_nodes.ContextWindows().apply(model, length, overlap, schedule, False, "pyramid", False)[0]


def inputs(frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(frames, 4, 8, 8, generator=generator), torch.randn(frames, 77, 768, generator=generator)


def added_features(model):
    """Records, per UNet call, what the first down level's image layer adds to its input."""
    layer = model.object_patches["diffusion_model.input_blocks.2"].image_features
    added = []
    hook = layer.register_forward_hook(lambda _, args, out: added.append((out - args[0]).float()))
    return added, hook


def expected_features(module, reference, frames, motion_scale=0.8):
    """Level 0 of the official encoder over the whole video, in float64 (one reference row: every frame)."""
    scaled = reference.float()
    video = scaled.expand(frames, -1, -1, -1) if scaled.shape[0] == 1 else scaled
    return reference_encoder(module.image_encoder, video, motion_scale)[0].float()


@pytest.mark.parametrize("references", [1, 8], ids=["one start image", "per-frame start images"])
@pytest.mark.parametrize("cond_or_uncond", [[0], [1, 0]], ids=["cfg 1", "cfg above 1"])
def test_each_window_gets_the_videos_features_at_its_frames(pack, tiny_model, tmp_path, references, cond_or_uncond):
    module = tiny_module(pack, tmp_path)
    model, reference = i2v_model(pack, tiny_model, module, 8, references)
    model = windowed(pack, model, 4, 2)  # static windows 0-3, 2-5, 4-7
    added, hook = added_features(model)
    x, context = inputs(8)
    try:
        out = denoise(model, x, context, cond_or_uncond)
    finally:
        hook.remove()
    assert torch.isfinite(out).all() and out.shape[0] == 8 * len(cond_or_uncond)
    scaled = model.model.process_latent_in(reference)
    whole = expected_features(module, scaled, 8)
    windows = [list(range(0, 4)), list(range(2, 6)), list(range(4, 8))]
    assert len(added) == len(windows)
    for window, got in zip(windows, added):
        for video in range(len(cond_or_uncond)):  # the negative video gets the same frames' features
            torch.testing.assert_close(got[video * 4:(video + 1) * 4], whole[window], atol=1e-4, rtol=1e-4)


def test_under_comfyuis_own_windows_the_features_are_the_windows(pack, tiny_model, tmp_path):
    """ComfyUI's core context windows cut the batch before the model wrapper and name the window's frames
    (transformer_options["context_window"].index_list): the features are those frames' features.
    (Called as core calls the wrapper: in 0.3.75 core windows over the batch dimension cannot run a whole
    SD1.5 sampling, whatever the sampler: their set_step compares the run's sigmas with the per-latent
    timesteps, and fails for any batch of frames.)"""
    module = tiny_module(pack, tmp_path)
    model, reference = i2v_model(pack, tiny_model, module, 12)
    whole = expected_features(module, model.model.process_latent_in(reference), 12)
    x, context = inputs(4, seed=2)
    for window in ([0, 1, 2, 3], [6, 7, 8, 9], [10, 11, 0, 1]):  # the last one wraps, as looped schedules do
        added, hook = added_features(model)
        try:
            denoise(model, x, context, [1, 0], extra_options={"context_window": SimpleNamespace(index_list=window)})
        finally:
            hook.remove()
        torch.testing.assert_close(added[0][:4], whole[window], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(added[0][4:], whole[window], atol=1e-4, rtol=1e-4)


def test_a_video_no_longer_than_the_window_is_unchanged_bit_for_bit(pack, tiny_model, tmp_path):
    module = tiny_module(pack, tmp_path)
    model, _ = i2v_model(pack, tiny_model, module, 16)
    x, context = inputs(16, seed=4)
    plain = denoise(model, x, context, [1, 0])
    assert torch.equal(denoise(windowed(pack, model, 16, 4, "uniform"), x, context, [1, 0]), plain)


def test_the_same_seed_gives_the_same_video_whatever_order_the_windows_run(pack, tiny_model, tmp_path):
    cw = pack.motion.context_windows
    module = tiny_module(pack, tmp_path)
    model, _ = i2v_model(pack, tiny_model, module, 10)
    model = windowed(pack, model, 4, 2)
    x, context = inputs(10, seed=5)
    forward = denoise(model, x, context, [1, 0])
    windows = cw.context_windows

    def backwards(*args, **kwargs):
        return list(reversed(windows(*args, **kwargs)))
    try:
        cw.context_windows = backwards  # the pack's own module, in this test only: the windows run last to first
        reverse = denoise(model, x, context, [1, 0])
    finally:
        cw.context_windows = windows
    assert torch.equal(forward, reverse)


# --- through ComfyUI's executor ---------------------------------------------------------------------------

def i2v_prompt(checkpoint, module_name, frames, references, cfg, windows):
    """Checkpoint → AnimateLCM Image to Video → windows → AnimateLCM Sampler, at 64×64 and 2 steps."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": module_name}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        # the narrow checkpoint has no VAE: the start latents come in as the node's reference_latent
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": references}},
        "4": {"class_type": "ALCM_ImageToVideo", "inputs": {
            "model": ["1", 0], "motion_module": ["2", 0], "image": ["3", 0], "vae": ["1", 2], "width": 64,
            "height": 64, "frames": frames, "motion_scale": 0.8, "reference_latent": ["9", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "8": {"class_type": "ALCM_Sampler", "inputs": {
            "model": ["5", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["4", 1], "seed": 1,
            "steps": 2, "cfg": cfg, "denoise": 1.0, "mode": "auto"}},
    }
    prompt["5"] = {"class_type": windows[0], "inputs": {"model": ["4", 0], **windows[1]}}
    return prompt


def pack_windows(length, overlap):
    return ("ALCM_ContextWindows", {"context_length": length, "overlap": overlap, "schedule": "uniform",
                                    "closed_loop": False, "fuse": "pyramid", "freenoise": True})


@pytest.fixture(scope="module")
def narrow_i2v(host):
    checkpoint = stand_ins.narrow_sd15_checkpoint(host)
    name = "animatelcm_i2v_narrow.safetensors"
    save_safetensors(motion_state_dict("animatelcm_i2v", NARROW_CHANNELS), host.models_dir("animatediff_models") / name)
    return checkpoint, name


@pytest.mark.parametrize("frames, length, overlap, references, cfg", [
    (20, 16, 4, 1, 1.5),   # the recommended windows, one start image
    (8, 4, 2, 8, 1.0),     # per-frame start images, one pass
    (8, 4, 2, 8, 1.5),     # per-frame start images, positive and negative
])
def test_image_to_video_under_context_windows_through_the_executor(host, narrow_i2v, frames, length, overlap,
                                                                   references, cfg):
    prompt = i2v_prompt(*narrow_i2v, frames, references, cfg, pack_windows(length, overlap))
    first = host.run(prompt, want=["8"], executor=host.fresh_executor()).output("8")["samples"]
    again = host.run(prompt, want=["8"], executor=host.fresh_executor()).output("8")["samples"]
    assert first.shape == (frames, 4, 8, 8) and torch.isfinite(first).all()
    assert torch.equal(first, again)  # the same seed, the same video

