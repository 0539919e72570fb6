"""Style LoRAs and AnimateLCM's spatial LoRA land at exactly the intended strength, on image layers only."""
import pickle

import pytest
import torch
from safetensors.torch import save_file

from fixture_lora import kohya_lora, to_loha, to_peft, unet_modules
from fixture_models import RunsCode
from fixture_motion import motion_state_dict, save_safetensors

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded

TINY = (32, 64, 128)
LAYER = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"  # a sampled layer (cross-attn k)
MODEL_KEY = "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"  # the same layer in ComfyUI's UNet


def write(host, name, state_dict):
    path = host.models_dir("loras") / name
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return name


def patched_weight(model, key=MODEL_KEY):
    import comfy.model_management
    import comfy.utils
    comfy.model_management.load_models_gpu([model])
    weight = comfy.utils.get_attr(model.model.diffusion_model, key.replace(".weight", "")).weight.detach().clone()
    comfy.model_management.unload_all_models()
    return weight


def up_down(lora, layer=LAYER):
    return lora[f"{layer}.lora_up.weight"].float() @ lora[f"{layer}.lora_down.weight"].float()


@pytest.mark.parametrize("strength", [1.0, 0.5, -0.7])
@pytest.mark.parametrize("layout,alpha", [("kohya", None), ("kohya", 2.0), ("peft", None)])  # PEFT keeps no alpha
def test_style_lora_adds_strength_alpha_over_rank_up_down(pack, host, tiny_model, alpha, strength, layout):
    lora = kohya_lora(rank=4, alpha=alpha, channels=TINY, text_encoder=False, dtype=torch.float32)
    name = write(host, f"style_{layout}_{alpha}.safetensors", lora if layout == "kohya" else to_peft(lora))
    node = pack.nodes.lora_nodes.LoadStyleLoRA()
    model, _, report = node.load(tiny_model, None, name, strength, 0.0)
    base = tiny_model.model.diffusion_model.state_dict()[MODEL_KEY]
    scale = strength * (alpha / 4 if alpha else 1.0)
    torch.testing.assert_close(patched_weight(model), base + scale * up_down(lora), atol=1e-6, rtol=1e-5)
    assert f"patched {len(unet_modules(TINY))} of {len(unet_modules(TINY))} layers" in report


def test_loha_lands_as_comfyuis_own_lora_loader_puts_it(pack, host, tiny_model):
    import comfy.sd
    loha = to_loha(kohya_lora(rank=4, channels=TINY, text_encoder=False, dtype=torch.float32))
    name = write(host, "style_loha.safetensors", loha)
    ours = pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_model, None, name, 0.6, 0.0)[0]
    core = comfy.sd.load_lora_for_models(tiny_model, None, loha, 0.6, 0.0)[0]
    torch.testing.assert_close(patched_weight(ours), patched_weight(core), atol=0, rtol=0)
    assert not torch.equal(patched_weight(ours), tiny_model.model.diffusion_model.state_dict()[MODEL_KEY])


@pytest.mark.parametrize("alpha", [None, 64.0, 1.0])
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_animatelcm_lora_is_the_official_0_8_times_one_eighth(pack, host, tiny_model, alpha, strength):
    """convert_lcm_lora in AnimateLCM's code: weight += 1/8 · 0.8 · up@down, whatever alpha the file has."""
    lora = kohya_lora(rank=8, alpha=alpha, channels=TINY, text_encoder=False, dtype=torch.float32, seed=3)
    name = write(host, f"AnimateLCM_sd15_t2v_lora_{alpha}.safetensors", lora)
    model, report = pack.nodes.lora_nodes.LoadAnimateLCMLoRA().load(tiny_model, name, strength)
    base = tiny_model.model.diffusion_model.state_dict()[MODEL_KEY]
    torch.testing.assert_close(patched_weight(model), base + strength * 0.8 / 8 * up_down(lora), atol=1e-6, rtol=1e-5)


def test_stack_applies_each_lora_in_turn(pack, host, tiny_model):
    a = kohya_lora(rank=4, channels=TINY, text_encoder=False, dtype=torch.float32, seed=1)
    b = kohya_lora(rank=4, alpha=2.0, channels=TINY, text_encoder=False, dtype=torch.float32, seed=2)
    names = write(host, "stack_a.safetensors", a), write(host, "stack_b.safetensors", b)
    slots = {f"lora_{i}": "None" for i in range(1, 6)} | {f"strength_{i}": 0.8 for i in range(1, 6)}
    slots.update(lora_1=names[0], strength_1=0.5, lora_3=names[1], strength_3=1.0)
    model, _, report = pack.nodes.lora_nodes.StyleLoRAStack().load(tiny_model, None, **slots)
    base = tiny_model.model.diffusion_model.state_dict()[MODEL_KEY]
    expected = base + 0.5 * up_down(a) + 1.0 * 0.5 * up_down(b)
    torch.testing.assert_close(patched_weight(model), expected, atol=1e-6, rtol=1e-5)
    assert report.count("patched") == 2


def motion_module(pack, tmp_path):
    path = tmp_path / "tiny_motion.safetensors"
    save_safetensors(motion_state_dict("animatelcm_t2v", (32, 64, 128, 128)), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def test_order_with_the_motion_module_does_not_matter_and_motion_weights_are_untouched(pack, host, tiny_model, tmp_path):
    import comfy.model_management
    from test_motion_injection import denoise, inputs
    lora = kohya_lora(rank=4, channels=TINY, text_encoder=False, dtype=torch.float32)
    name = write(host, "style_order.safetensors", lora)
    module = motion_module(pack, tmp_path)
    style, apply_motion = pack.nodes.lora_nodes.LoadStyleLoRA(), pack.nodes.motion_nodes.ApplyMotionModule()
    lora_first = apply_motion.apply(style.load(tiny_model, None, name, 1.0, 0.0)[0], module, 1.0)[0]
    motion_first = style.load(apply_motion.apply(tiny_model, module, 1.0)[0], None, name, 1.0, 0.0)[0]
    assert not any("motion_module" in k for k in motion_first.patches)
    x, context = inputs(4)
    torch.testing.assert_close(denoise(lora_first, x, context, [0]), denoise(motion_first, x, context, [0]), atol=0, rtol=0)
    comfy.model_management.load_models_gpu([motion_first])
    layer = motion_first.model.diffusion_model.input_blocks[4].motion_module
    key = "down_blocks.1.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight"
    to_q = module.weights[key]  # the layer computes q/k/v in one product; q is the first block of rows
    assert torch.equal(layer.temporal_transformer.transformer_blocks[0].attention_blocks[0].to_qkv.weight[:len(to_q)], to_q)


def test_lora_matching_nothing_names_the_file_and_what_it_is(pack, host, tiny_model):
    node = pack.nodes.lora_nodes.LoadStyleLoRA()
    sdxl = {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": torch.zeros(4, 1280),
            "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": torch.zeros(1280, 4),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.zeros(4, 2048),
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.zeros(640, 4)}
    with pytest.raises(ValueError, match="sdxl_style.safetensors.*SDXL LoRA"):
        node.load(tiny_model, None, write(host, "sdxl_style.safetensors", sdxl), 1.0, 1.0)
    motion_lora = {"down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.lora.down.weight": torch.zeros(4, 32),
                   "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.lora.up.weight": torch.zeros(32, 4)}
    with pytest.raises(ValueError, match="motion LoRA.*animatediff_motion_lora"):
        node.load(tiny_model, None, write(host, "v2_lora_PanLeft.safetensors", motion_lora), 1.0, 1.0)
    with pytest.raises(ValueError, match="not a LoRA"):
        node.load(tiny_model, None, write(host, "weights.safetensors", {"foo.weight": torch.zeros(2)}), 1.0, 1.0)
    (host.models_dir("loras") / "broken.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.safetensors.*corrupt or truncated"):
        node.load(tiny_model, None, "broken.safetensors", 1.0, 1.0)


def test_partial_match_is_reported(pack, host, tiny_model):
    lora = kohya_lora(rank=4, channels=TINY, text_encoder=False, dtype=torch.float32)
    lora["lora_unet_no_such_layer.lora_down.weight"] = torch.zeros(4, 32)
    lora["lora_unet_no_such_layer.lora_up.weight"] = torch.zeros(32, 4)
    name = write(host, "partial.safetensors", lora)
    _, _, report = pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_model, None, name, 1.0, 1.0)
    total = len(unet_modules(TINY)) + 1
    assert f"patched {total - 1} of {total} layers" in report and "1 matched nothing" in report


def test_pickle_lora_is_loaded_weights_only(pack, host, tiny_model, tmp_path):
    node = pack.nodes.lora_nodes.LoadStyleLoRA()
    lora = kohya_lora(rank=4, channels=TINY, text_encoder=False, dtype=torch.float32)
    torch.save(lora, host.models_dir("loras") / "clean.pt")
    assert "patched" in node.load(tiny_model, None, "clean.pt", 1.0, 1.0)[2]
    marker = tmp_path / "pwned"
    with open(host.models_dir("loras") / "evil.pt", "wb") as f:
        torch.save({**lora, "payload": RunsCode(str(marker))}, f, pickle_module=pickle)
    with pytest.raises(ValueError, match="evil.pt.*refused"):
        node.load(tiny_model, None, "evil.pt", 1.0, 1.0)
    assert not marker.exists()
