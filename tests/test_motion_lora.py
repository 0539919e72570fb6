"""Motion LoRAs merged into a motion module: the maths, the mid-block case, refusals, the input kept."""

import pytest
import torch
from safetensors.torch import save_file

from fixture_models import TINY_CHANNELS, tiny_sd15_model
from fixture_motion import (motion_lora_state_dict, motion_lora_target, motion_state_dict, save_pickle,
                            save_safetensors)

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded


def module_file(tmp_path, family="animatelcm_t2v", dtype=torch.float32):
    path = tmp_path / f"{family}.safetensors"
    save_safetensors(motion_state_dict(family, TINY_CHANNELS, dtype=dtype), path)
    return path


def lora_file(tmp_path, name="v2_lora_ZoomIn.ckpt", seed=0, mid=True, channels=TINY_CHANNELS, wrap=False):
    sd = motion_lora_state_dict(channels, rank=4, mid=mid, seed=seed)
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_safetensors(sd, path)
    else:
        torch.save({"state_dict": sd} if wrap else sd, path)  # the released files are pickles, some wrapped
    return path, sd


@pytest.fixture
def engine(pack):
    return pack.motion.motion_lora


def merged(engine, pack, module_path, lora_path, strength):
    module = pack.motion.motion_module.load_motion_module(str(module_path))
    return module, engine.apply_motion_lora(module, engine.load_motion_lora(str(lora_path)), strength)


@pytest.mark.parametrize("strength", [1.0, 0.8, -1.5, 2.0])
@pytest.mark.parametrize("lora_name", ["v2_lora_ZoomIn.ckpt", "v2_lora_PanLeft.safetensors"])
def test_every_attention_weight_is_base_plus_strength_up_down(engine, pack, tmp_path, strength, lora_name):
    lora_path, lora = lora_file(tmp_path, lora_name, wrap=lora_name.endswith(".ckpt"))
    module, (out, report) = merged(engine, pack, module_file(tmp_path), lora_path, strength)
    downs = [k for k in lora if k.endswith(".down.weight")]
    targets = {motion_lora_target(k) for k in downs}
    assert len(targets) == 21 * 2 * 4  # q, k, v, out of both attentions of every motion layer
    for down in downs:
        target, up = motion_lora_target(down), down[: -len("down.weight")] + "up.weight"
        expected = module.weights[target].double() + strength * lora[up].double() @ lora[down].double()
        torch.testing.assert_close(out.weights[target].double(), expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out.weights[target], module.weights[target])
    for key, value in module.weights.items():  # everything else is the module's own tensor, shared, not copied
        if key not in targets:
            assert out.weights[key] is value, key
    assert set(out.weights) == set(module.weights)
    assert "168 attention weights" in report and "merged" in report


def test_strength_zero_is_the_module_bit_for_bit(engine, pack, tmp_path):
    lora_path, _ = lora_file(tmp_path)
    module, (out, report) = merged(engine, pack, module_file(tmp_path), lora_path, 0.0)
    assert set(out.weights) == set(module.weights)
    assert all(out.weights[k] is v for k, v in module.weights.items())
    assert "strength 0" in report


def test_input_motion_module_is_unchanged(engine, pack, tmp_path):
    lora_path, _ = lora_file(tmp_path)
    module = pack.motion.motion_module.load_motion_module(str(module_file(tmp_path)))
    tensors_before = dict(module.weights)
    values_before = {k: v.clone() for k, v in module.weights.items()}
    name_before = module.name
    out, _ = engine.apply_motion_lora(module, engine.load_motion_lora(str(lora_path)), 1.0)
    assert out is not module and out.weights is not module.weights
    assert module.name == name_before and "v2_lora_ZoomIn.ckpt" in out.name
    assert module.weights.keys() == tensors_before.keys()
    assert all(module.weights[k] is v for k, v in tensors_before.items())
    assert all(torch.equal(module.weights[k], v) for k, v in values_before.items())


def test_chained_loras_accumulate(engine, pack, tmp_path):
    zoom_path, zoom = lora_file(tmp_path, "v2_lora_ZoomIn.ckpt", seed=1)
    pan_path, pan = lora_file(tmp_path, "v2_lora_PanLeft.ckpt", seed=2)
    module = pack.motion.motion_module.load_motion_module(str(module_file(tmp_path)))
    first, _ = engine.apply_motion_lora(module, engine.load_motion_lora(str(zoom_path)), 0.7)
    both, _ = engine.apply_motion_lora(first, engine.load_motion_lora(str(pan_path)), -0.4)
    key = "up_blocks.1.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor.to_v_lora."
    target = motion_lora_target(key + "down.weight")
    expected = (module.weights[target].double() + 0.7 * zoom[key + "up.weight"].double() @ zoom[key + "down.weight"].double()
                - 0.4 * pan[key + "up.weight"].double() @ pan[key + "down.weight"].double())
    torch.testing.assert_close(both.weights[target].double(), expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(first.weights[target], both.weights[target])  # the first link keeps its own


def test_half_precision_module_stays_half(engine, pack, tmp_path):
    lora_path, lora = lora_file(tmp_path)
    module, (out, _) = merged(engine, pack, module_file(tmp_path, dtype=torch.float16), lora_path, 1.0)
    key = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_out_lora."
    target = motion_lora_target(key + "down.weight")
    assert out.weights[target].dtype == torch.float16
    expected = (module.weights[target].float() + lora[key + "up.weight"] @ lora[key + "down.weight"]).half()
    torch.testing.assert_close(out.weights[target], expected, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("family", ["v3", "v1"])
def test_v2_lora_on_a_module_without_mid_block_applies_the_rest_and_says_so(engine, pack, tmp_path, family, caplog):
    lora_path, lora = lora_file(tmp_path)
    with caplog.at_level("WARNING"):
        module, (out, report) = merged(engine, pack, module_file(tmp_path, family), lora_path, 1.0)
    mid = {motion_lora_target(k) for k in lora if k.startswith("mid_block.")}
    rest = {motion_lora_target(k) for k in lora} - mid
    assert len(mid) == 8 and len(rest) == 160
    assert not any(k.startswith("mid_block.") for k in out.weights)
    assert all(not torch.equal(out.weights[k], module.weights[k]) for k in rest)
    assert "160 attention weights" in report and "8 mid-block weights were left out" in report
    assert "no mid block" in caplog.text


def test_lora_changes_the_video_and_strength_zero_does_not(engine, pack, tmp_path):
    """Through a real MODEL: the merged weights are the ones the temporal layers run with."""
    import comfy.model_management
    model = tiny_sd15_model()
    lora_path, _ = lora_file(tmp_path)
    module = pack.motion.motion_module.load_motion_module(str(module_file(tmp_path)))
    lora = engine.load_motion_lora(str(lora_path))
    generator = torch.Generator().manual_seed(0)
    x, context = torch.randn(4, 4, 8, 8, generator=generator), torch.randn(4, 77, 768, generator=generator)

    def unet(motion_module):
        animated = pack.motion.injection.animate(model, motion_module)
        comfy.model_management.load_models_gpu([animated])
        args = {"input": x, "timestep": torch.full((4,), 3.0), "cond_or_uncond": [0],
                "c": {"c_crossattn": context, "transformer_options": {"cond_or_uncond": [0]}}}
        with torch.inference_mode():
            out = animated.model_options["model_function_wrapper"](animated.model.apply_model, args)
        comfy.model_management.unload_all_models()
        return out
    plain = unet(module)
    assert torch.equal(unet(engine.apply_motion_lora(module, lora, 0.0)[0]), plain)
    assert not torch.allclose(unet(engine.apply_motion_lora(module, lora, 1.0)[0]), plain, atol=1e-4)


def _refused(engine, path, *phrases):
    with pytest.raises(ValueError) as error:
        engine.load_motion_lora(str(path))
    message = str(error.value)
    assert path.name in message, message
    for phrase in phrases:
        assert phrase in message, message


def test_refuses_a_style_lora(engine, tmp_path):
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)},
              str(tmp_path / "my_style.safetensors"))
    _refused(engine, tmp_path / "my_style.safetensors", "style LoRA", "models/loras", "Load Style LoRA")


def test_refuses_a_motion_module(engine, tmp_path):
    save_pickle(motion_state_dict("v2", TINY_CHANNELS), tmp_path / "mm_sd_v15_v2.ckpt")
    _refused(engine, tmp_path / "mm_sd_v15_v2.ckpt", "motion module, not a motion LoRA", "animatediff_models")


def test_refuses_an_image_checkpoint(engine, tmp_path):
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)},
              str(tmp_path / "dreamshaper_8.safetensors"))
    _refused(engine, tmp_path / "dreamshaper_8.safetensors", "image model checkpoint", "models/checkpoints")


def test_refuses_unrelated_weights_and_a_damaged_lora(engine, tmp_path):
    save_file({"encoder.layers.0.weight": torch.zeros(2, 2)}, str(tmp_path / "something.safetensors"))
    _refused(engine, tmp_path / "something.safetensors", "not an AnimateDiff motion LoRA", "animatediff_motion_lora")
    sd = motion_lora_state_dict(TINY_CHANNELS)
    del sd["down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_k_lora.up.weight"]
    save_safetensors(sd, tmp_path / "v2_lora_TiltUp.safetensors")
    _refused(engine, tmp_path / "v2_lora_TiltUp.safetensors", "damaged", "down_blocks.1.motion_modules.0")


def test_refuses_a_lora_made_for_other_channels(engine, pack, tmp_path):
    lora_path, _ = lora_file(tmp_path, "sdxl_motion_lora.safetensors", channels=(64, 128, 256, 256))
    module = pack.motion.motion_module.load_motion_module(str(module_file(tmp_path)))
    with pytest.raises(ValueError, match="sdxl_motion_lora.safetensors.*does not fit.*SD1.5 motion LoRA"):
        engine.apply_motion_lora(module, engine.load_motion_lora(str(lora_path)), 1.0)


def test_motion_module_loader_names_a_real_motion_lora(pack, tmp_path):
    lora_path, _ = lora_file(tmp_path, "v2_lora_RollingClockwise.safetensors")
    with pytest.raises(ValueError, match="v2_lora_RollingClockwise.safetensors' is a motion LoRA.*animatediff_motion_lora"):
        pack.motion.motion_module.load_motion_module(str(lora_path))


def test_node_in_a_comfyui_graph(host, pack, tmp_path):
    """Load Motion Module → Load Motion LoRA through ComfyUI's own validation and executor."""
    import comfy_host
    save_safetensors(motion_state_dict("v3", TINY_CHANNELS), host.models_dir("animatediff_models") / "mm_tiny_v3.safetensors")
    lora_path, lora = lora_file(tmp_path)
    (host.models_dir("animatediff_motion_lora") / "v2_lora_ZoomOut.ckpt").write_bytes(lora_path.read_bytes())
    node = pack.nodes.motion_lora_nodes.LoadMotionLoRA
    assert "v2_lora_ZoomOut.ckpt" in node.INPUT_TYPES()["required"]["motion_lora_name"][0]
    prompt = {"1": {"class_type": "ALCM_LoadMotionModule", "inputs": {"motion_module_name": "mm_tiny_v3.safetensors"}},
              "2": {"class_type": "ALCM_LoadMotionLoRA", "inputs": {"motion_module": ["1", 0],
                                                                    "motion_lora_name": "v2_lora_ZoomOut.ckpt",
                                                                    "strength": 0.5}}}
    result = host.run(prompt, want=["2"])
    module, lora_module, report = result.output("1"), result.output("2", 0), result.output("2", 1)
    assert "left out" in report and "mid block" in report
    key = "down_blocks.0.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora."
    target = motion_lora_target(key + "down.weight")
    torch.testing.assert_close(lora_module.weights[target],
                               module.weights[target] + 0.5 * lora[key + "up.weight"] @ lora[key + "down.weight"])
    prompt["2"]["inputs"]["strength"] = float("nan")
    with pytest.raises((comfy_host.PromptFailed, comfy_host.PromptInvalid), match="strength"):
        host.run(prompt, want=["2"])
    with pytest.raises(FileNotFoundError, match="animatediff_motion_lora"):
        node().load(module, "not_there.ckpt", 1.0)


def test_motion_lora_workflow_converts_to_the_expected_prompt(host, workflow_api):
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "workflows" / "animatelcm_motion_lora_t2v.json"
    workflow = json.loads(path.read_text())
    assert workflow_api.check_workflow(workflow) == []
    prompt = workflow_api.to_api(workflow)
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    motion_id, _ = by_type["ALCM_LoadMotionModule"]
    lora_id, lora = by_type["ALCM_LoadMotionLoRA"]
    freeinit_id, freeinit = by_type["ALCM_FreeInitOptions"]
    assert lora == {"motion_module": [motion_id, 0], "motion_lora_name": "v2_lora_ZoomIn.ckpt", "strength": 1.0}
    assert by_type["ALCM_ApplyMotionModule"][1]["motion_module"] == [lora_id, 0]
    assert freeinit == {"iterations": 3, "filter": "butterworth", "spatial_stop": 0.25, "temporal_stop": 0.25,
                        "butterworth_order": 4}
    sampler = by_type["ALCM_Sampler"][1]
    assert sampler["freeinit"] == [freeinit_id, 0] and (sampler["steps"], sampler["cfg"]) == (4, 1.5)
