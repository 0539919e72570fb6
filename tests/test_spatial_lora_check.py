"""The sampler's check that an AnimateLCM motion module samples with AnimateLCM's spatial LoRA."""
import logging

import pytest
import torch

from fixture_lora import kohya_lora
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import conditioning

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded
WARNING = "AnimateLCM without its spatial LoRA"


def module(pack, tmp_path, family):
    path = tmp_path / f"{family}.safetensors"
    save_safetensors(motion_state_dict(family, TINY_CHANNELS), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def with_spatial_lora(pack, model, strength=1.0):
    lora = kohya_lora(channels=TINY_CHANNELS[:3], text_encoder=False, dtype=torch.float32)
    return pack.lora.apply.apply_spatial_lora(model, lora, "AnimateLCM_sd15_t2v_lora.safetensors", strength)[0]


def sample(pack, model, **options):
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    node = pack.nodes.sampler_nodes.AnimateLCMSampler()
    with torch.inference_mode():
        out = node.sample(model, conditioning(0.1), conditioning(0.0), latent, 1, 1, 1.0, 1.0, **options)
    return out["result"][0], out.get("ui", {}).get("animatelcm_warnings", [])  # a warning is a UI output


def test_warns_once_without_the_lora_and_still_samples(pack, tiny_model, tmp_path, caplog):
    animated = pack.motion.injection.animate(tiny_model, module(pack, tmp_path, "animatelcm_t2v"))
    with caplog.at_level(logging.WARNING):
        latent, warnings = sample(pack, animated)
    assert latent["samples"].shape == (2, 4, 8, 8) and torch.isfinite(latent["samples"]).all()
    assert len(warnings) == 1 and warnings[0].startswith(WARNING)
    assert "AnimateLCM_sd15_t2v_lora.safetensors" in warnings[0] and "warn_without_spatial_lora" in warnings[0]
    assert sum(WARNING in r.getMessage() for r in caplog.records) == 1  # once in the log, for the whole run


def test_silent_with_the_lora_before_or_after_the_motion_module(pack, tiny_model, tmp_path, caplog):
    motion = module(pack, tmp_path, "animatelcm_t2v")
    before = pack.motion.injection.animate(with_spatial_lora(pack, tiny_model), motion)
    after = with_spatial_lora(pack, pack.motion.injection.animate(tiny_model, motion))
    with caplog.at_level(logging.WARNING):
        assert sample(pack, before)[1] == [] and sample(pack, after)[1] == []
    assert not any(WARNING in r.getMessage() for r in caplog.records)
    assert pack.lora.apply.spatial_lora_of(tiny_model) is None  # the input MODEL is not marked


def test_silent_when_told_and_for_other_modules_or_no_module(pack, tiny_model, tmp_path):
    animatelcm = pack.motion.injection.animate(tiny_model, module(pack, tmp_path, "animatelcm_t2v"))
    assert sample(pack, animatelcm, warn_without_spatial_lora=False)[1] == []
    v2 = pack.motion.injection.animate(tiny_model, module(pack, tmp_path, "v2"))
    assert sample(pack, v2)[1] == []  # an AnimateDiff module has no spatial LoRA to miss
    assert sample(pack, tiny_model)[1] == []  # an image model
    zero = pack.motion.injection.animate(with_spatial_lora(pack, tiny_model, strength=0.0),
                                         module(pack, tmp_path, "animatelcm_t2v"))
    assert sample(pack, zero)[1] != []  # strength 0 merges nothing: still without it


def test_image_to_video_names_the_i2v_lora(pack, tiny_model, tmp_path):
    i2v = module(pack, tmp_path, "animatelcm_i2v")
    reference = {"samples": torch.randn(1, 4, 8, 8)}
    model, _ = pack.nodes.i2v_nodes.ImageToVideo().apply(tiny_model, i2v, None, None, 64, 64, 2, 0.8,
                                                          reference_latent=reference)
    warnings = sample(pack, model)[1]
    assert len(warnings) == 1 and "AnimateLCM_sd15_i2v_lora.safetensors" in warnings[0]
