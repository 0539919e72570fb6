"""Every motion-module format users have is recognised; everything else is refused with what it is."""
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from fixture_models import RunsCode
from fixture_motion import FAMILIES, motion_lora_state_dict, motion_state_dict, save_pickle, save_safetensors, to_diffusers

TINY = (32, 64, 128, 128)
EXPECTED = {  # family: (name shown to the user, frames, positions)
    "animatelcm_t2v": ("AnimateLCM t2v", 64, 21),
    "animatelcm_i2v": ("AnimateLCM i2v", 64, 21),
    "v1": ("AnimateDiff v1", 24, 20),
    "v2": ("AnimateDiff v2", 32, 21),
    "v3": ("AnimateDiff v3", 32, 20),
}


@pytest.fixture
def load(pack):
    return pack.motion.motion_module.load_motion_module


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("ext", [".ckpt", ".safetensors"])
def test_recognises_each_family(load, tmp_path, family, ext):
    sd = motion_state_dict(family, TINY)
    path = tmp_path / f"{family}{ext}"
    (save_pickle if ext == ".ckpt" else save_safetensors)(sd, path)
    module = load(str(path))
    name, frames, positions = EXPECTED[family]
    assert module.format.family == name
    assert module.max_frames == frames
    assert len(module.positions()) == positions
    assert (module.image_encoder is not None) == family.endswith("i2v")
    key = "down_blocks.1.motion_modules.0.temporal_transformer.proj_in.weight"
    assert torch.equal(module.weights[key], sd[key])


def test_animatelcm_gets_the_64_frame_sinusoid_it_was_trained_with(load, tmp_path, pack):
    save_safetensors(motion_state_dict("animatelcm_t2v", TINY), tmp_path / "lcm.safetensors")
    module = load(str(tmp_path / "lcm.safetensors"))
    assert module.max_frames == 64
    assert not any("pos_encoder" in k for k in module.weights)  # nothing invented: the layer owns its encoding
    layer = module.build_layers(torch.float32)["mid_block.motion_modules.0"]
    encoder = layer.temporal_transformer.transformer_blocks[0].attention_blocks[1].pos_encoder
    pe = encoder.encoding(64, torch.zeros(()))
    assert pe.shape == (1, 64, 128)
    assert torch.allclose(pe[0, 5, 0], torch.sin(torch.tensor(5.0)))
    assert torch.allclose(pe[0, 5, 1], torch.cos(torch.tensor(5.0)))
    assert torch.allclose(pe[0, 63, 127], torch.cos(torch.tensor(63 / 10000 ** (126 / 128))))


def test_stored_positional_encoding_is_kept(load, tmp_path):
    sd = motion_state_dict("v2", TINY)
    key = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe"
    sd[key] = torch.randn(sd[key].shape)  # a learned encoding, unlike any sinusoid
    save_safetensors(sd, tmp_path / "v2.safetensors")
    module = load(str(tmp_path / "v2.safetensors"))
    layer = module.build_layers(torch.float32)["mid_block.motion_modules.0"]
    encoder = layer.temporal_transformer.transformer_blocks[0].attention_blocks[1].pos_encoder
    assert torch.equal(encoder.encoding(32, torch.zeros(())), sd[key])


def test_checkpoint_wrapped_in_state_dict_key(load, tmp_path):
    torch.save({"state_dict": motion_state_dict("v3", TINY)}, tmp_path / "wrapped.ckpt")
    assert load(str(tmp_path / "wrapped.ckpt")).format.family == "AnimateDiff v3"


def test_diffusers_motion_adapter_is_converted(load, tmp_path):
    original = motion_state_dict("v2", TINY)
    folder = tmp_path / "animatediff-motion-adapter-v1-5-2"
    folder.mkdir()
    save_safetensors(to_diffusers(original), folder / "diffusion_pytorch_model.safetensors")
    (folder / "config.json").write_text(json.dumps({"_class_name": "MotionAdapter", "motion_max_seq_length": 32}))
    module = load(str(folder / "diffusion_pytorch_model.safetensors"))
    assert module.format.converted_from_diffusers and module.max_frames == 32
    assert len(module.positions()) == 21
    assert set(module.weights) == set(original)
    for key, value in original.items():
        assert torch.equal(module.weights[key], value), key


def _refused(load, path, *phrases):
    with pytest.raises(ValueError) as error:
        load(str(path))
    message = str(error.value)
    assert os.path.basename(str(path)) in message
    for phrase in phrases:
        assert phrase in message, message


def test_refuses_sdxl_module(load, tmp_path):
    sd = motion_state_dict("v3", (320, 640, 1280), levels=3)
    save_safetensors(sd, tmp_path / "mm_sdxl_v10_beta.safetensors")
    _refused(load, tmp_path / "mm_sdxl_v10_beta.safetensors", "SDXL", "SD1.5")


def test_refuses_hotshot_xl(load, tmp_path):
    save_file({"down_blocks.0.temporal_attentions.0.transformer_blocks.0.attention_blocks.0.to_q.weight": torch.zeros(4, 4)},
              str(tmp_path / "hsxl_temporal_layers.safetensors"))
    _refused(load, tmp_path / "hsxl_temporal_layers.safetensors", "HotshotXL")


def test_refuses_image_checkpoint(load, tmp_path):
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "first_stage_model.decoder.conv_in.weight": torch.zeros(4, 4)}, str(tmp_path / "dreamshaper_8.safetensors"))
    _refused(load, tmp_path / "dreamshaper_8.safetensors", "image model checkpoint", "models/checkpoints")


def test_refuses_style_lora_and_motion_lora(load, tmp_path):
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)},
              str(tmp_path / "style.safetensors"))
    _refused(load, tmp_path / "style.safetensors", "LoRA", "models/loras")
    save_file({"down_blocks.0.motion_modules.0.temporal_transformer.proj_in.lora_down.weight": torch.zeros(4, 320)},
              str(tmp_path / "v2_lora_ZoomIn.safetensors"))
    _refused(load, tmp_path / "v2_lora_ZoomIn.safetensors", "motion LoRA", "animatediff_motion_lora")


def test_refuses_unrelated_weights(load, tmp_path):
    save_file({"encoder.layers.0.weight": torch.zeros(2, 2)}, str(tmp_path / "something.safetensors"))
    _refused(load, tmp_path / "something.safetensors", "not a motion module")


@pytest.mark.parametrize("ext", [".ckpt", ".safetensors"])
def test_refuses_truncated_files(load, tmp_path, ext):
    path = tmp_path / f"AnimateLCM_sd15_t2v{ext}"
    (save_pickle if ext == ".ckpt" else save_safetensors)(motion_state_dict("animatelcm_t2v", TINY), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(load, path, "corrupt or truncated")


def test_refuses_empty_and_garbage_files(load, tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    _refused(load, tmp_path / "empty.ckpt", "empty")
    (tmp_path / "garbage.safetensors").write_bytes(os.urandom(4096))
    _refused(load, tmp_path / "garbage.safetensors", "corrupt or truncated")


def test_refuses_incomplete_module(load, tmp_path):
    sd = motion_state_dict("v2", TINY)
    del sd["up_blocks.2.motion_modules.1.temporal_transformer.transformer_blocks.0.ff.net.2.weight"]
    save_safetensors(sd, tmp_path / "partial.safetensors")
    _refused(load, tmp_path / "partial.safetensors", "incomplete", "up_blocks.2.motion_modules.1")


@pytest.mark.parametrize("kind", ["motion module", "motion LoRA"])
def test_pickle_that_runs_code_is_refused_and_does_not_run(pack, kind, tmp_path):
    """Both loaders of motion files read pickles with weights_only: a payload is refused by name, never run."""
    marker = tmp_path / "pwned"
    if kind == "motion module":
        sd, read = motion_state_dict("v3", TINY), pack.motion.motion_module.load_motion_module
    else:
        sd, read = motion_lora_state_dict(TINY), pack.motion.motion_lora.load_motion_lora
    sd["payload"] = RunsCode(str(marker))
    with open(tmp_path / "evil.ckpt", "wb") as f:
        torch.save(sd, f, pickle_module=pickle)
    _refused(read, tmp_path / "evil.ckpt", "refused", ".safetensors")
    assert not marker.exists()


def test_loader_node_lists_and_loads_from_animatediff_models(host, pack):
    folder = host.models_dir("animatediff_models")
    save_safetensors(motion_state_dict("v2", TINY), folder / "mm_tiny_v2.safetensors")
    node = pack.nodes.motion_nodes.LoadMotionModule
    assert "mm_tiny_v2.safetensors" in node.INPUT_TYPES()["required"]["motion_module_name"][0]
    module = node().load("mm_tiny_v2.safetensors")[0]
    assert module.format.family == "AnimateDiff v2"
    with pytest.raises(FileNotFoundError, match="animatediff_models"):
        node().load("not_there.ckpt")
