"""Bad input, as a careless or hostile user sends it through ComfyUI's executor, ends in a clear
refusal that names the file or input and the fix, or in a correct result (issue 15)."""
import pytest
import torch
from safetensors.torch import save_file

import stand_ins
from comfy_host import PromptFailed, PromptInvalid
from fixture_lora import kohya_lora, sdxl_kohya_lora
from fixture_models import tiny_sd15_model

MAX_SEED = 0xffffffffffffffff  # the seed widget's maximum


@pytest.fixture(scope="module")
def checkpoint(host):
    return stand_ins.narrow_sd15_checkpoint(host)


def refusal(host, prompt, executor=None):
    """What ComfyUI reports for a prompt that must fail (every node of it asked to run): the failing
    node's exception message, or the validation errors."""
    with pytest.raises((PromptFailed, PromptInvalid)) as failed:
        host.run(prompt, want=list(prompt), executor=executor)
    return getattr(failed.value, "message", str(failed.value))


def write_lora(host, name, state_dict):
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(host.models_dir("loras") / name))
    return name


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
    largest, again = run(MAX_SEED), run(MAX_SEED)
    assert torch.isfinite(largest).all()
    assert torch.equal(largest, again)


def test_seeds_below_the_largest_keep_their_step_noise(pack):
    """Mapping the largest seed into torch's range changes no other seed's video."""
    x = torch.zeros(2, 4, 2, 2)
    for seed in (0, 5, MAX_SEED - 1):
        expected = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
        assert torch.equal(pack.samplers.noise.step_noise_sampler(x, seed)(1.0, 0.5), expected)


# --- 2. SDXL LoRAs ---------------------------------------------------------------------------------

def lora_graph(checkpoint, node, lora):
    """Checkpoint → one of the pack's LoRA loaders → what a user wires after it."""
    inputs = {"ALCM_LoadStyleLoRA": {"clip": ["1", 1], "lora_name": lora, "strength_model": 0.8, "strength_clip": 0.8},
              "ALCM_StyleLoRAStack": {"clip": ["1", 1], "lora_1": lora, "strength_1": 0.8,
                                      **{f"lora_{i}": "None" for i in range(2, 6)},
                                      **{f"strength_{i}": 0.8 for i in range(2, 6)}},
              "ALCM_LoadAnimateLCMLoRA": {"lora_name": lora, "strength": 1.0}}[node]
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
            "2": {"class_type": node, "inputs": {"model": ["1", 0], **inputs}},
            "3": {"class_type": "ALCM_ModelSampling", "inputs": {"model": ["2", 0], "mode": "text-to-video"}}}


@pytest.mark.parametrize("node", ["ALCM_LoadStyleLoRA", "ALCM_StyleLoRAStack", "ALCM_LoadAnimateLCMLoRA"])
def test_a_real_sdxl_lora_is_refused_by_every_loader_though_parts_of_it_fit(host, checkpoint, node):
    # at the narrow checkpoint's width, so that its image layers fit as a full-size SDXL file's fit SD1.5 by chance
    sdxl = sdxl_kohya_lora(channels=(320, 320))
    name = write_lora(host, "sdxl_style_lora.safetensors", sdxl)
    message = refusal(host, lora_graph(checkpoint, node, name))
    assert "'sdxl_style_lora.safetensors' is an SDXL LoRA" in message
    assert "lora_te2_" in message and "2048-wide cross-attention" in message and "Pick an SD1.5 LoRA" in message


@pytest.mark.parametrize("sign", ["second text encoder", "2048-wide cross-attention", "several transformer layers"])
def test_each_sdxl_sign_alone_is_enough(pack, host, sign):
    """An SD1.5 LoRA with one SDXL part added, and nothing else wrong, is refused for that part."""
    lora = kohya_lora(rank=4, channels=(32, 64, 128), dtype=torch.float32)
    sdxl = sdxl_kohya_lora(rank=4, channels=(64, 128), dtype=torch.float32)
    part = {"second text encoder": "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
            "2048-wide cross-attention": "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k",
            "several transformer layers": "lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q"}[sign]
    lora.update({k: v for k, v in sdxl.items() if k.startswith(part + ".")})
    name = write_lora(host, f"one_sdxl_part_{sign.split()[0]}.safetensors", lora)
    with pytest.raises(ValueError, match=f"'{name}' is an SDXL LoRA \\([^)]*{sign}"):
        pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_sd15_model(), None, name, 0.8, 0.8)
    del lora[part + ".lora_up.weight"], lora[part + ".lora_down.weight"], lora[part + ".alpha"]
    name = write_lora(host, "sd15_part_only.safetensors", lora)
    assert "patched" in pack.nodes.lora_nodes.LoadStyleLoRA().load(tiny_sd15_model(), None, name, 0.8, 0.8)[2]


def test_sdxl_fixture_has_the_kohya_sdxl_layout():
    keys = {k.split(".")[0] for k in sdxl_kohya_lora()}
    assert "lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k" in keys
    assert "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2" in keys
    assert "lora_unet_output_blocks_0_1_proj_in" in keys and "lora_unet_output_blocks_6_1_proj_in" not in keys
    assert "lora_te1_text_model_encoder_layers_11_mlp_fc1" in keys and "lora_te2_text_model_encoder_layers_31_self_attn_q_proj" in keys
    assert sdxl_kohya_lora()["lora_unet_input_blocks_7_1_transformer_blocks_0_attn2_to_v.lora_down.weight"].shape == (4, 2048)
