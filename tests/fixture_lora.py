"""Random-weight SD1.5 LoRAs in the kohya layout (what civitai style LoRAs are).

kohya names each patched module by its diffusers path with dots as underscores:
`lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q` (UNet) and
`lora_te_text_model_encoder_layers_0_self_attn_q_proj` (CLIP-L), each with `.lora_down.weight`
[rank, in], `.lora_up.weight` [out, rank] and, in most files, a scalar `.alpha`.
"""
import torch
from safetensors.torch import save_file

# (diffusers attention block, channels) of SD1.5's 16 transformer blocks
UNET_ATTENTIONS = ([(f"down_blocks_{i}_attentions_{j}", c) for i, c in enumerate((320, 640, 1280)) for j in range(2)]
                   + [("mid_block_attentions_0", 1280)]
                   + [(f"up_blocks_{i}_attentions_{j}", c) for i, c in ((1, 1280), (2, 640), (3, 320)) for j in range(3)])


def unet_modules():
    """{kohya name: (in, out)} for the attention projections of every SD1.5 transformer block."""
    modules = {}
    for block, c in UNET_ATTENTIONS:
        base = f"lora_unet_{block}_transformer_blocks_0"
        for attn, kv in (("attn1", c), ("attn2", 768)):
            modules[f"{base}_{attn}_to_q"] = (c, c)
            modules[f"{base}_{attn}_to_k"] = (kv, c)
            modules[f"{base}_{attn}_to_v"] = (kv, c)
            modules[f"{base}_{attn}_to_out_0"] = (c, c)
    return modules


def text_encoder_modules():
    return {f"lora_te_text_model_encoder_layers_{i}_self_attn_{p}": (768, 768)
            for i in range(12) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}


def kohya_lora(rank=4, alpha=None, seed=0, text_encoder=True, dtype=torch.float16):
    generator = torch.Generator().manual_seed(seed)
    modules = {**unet_modules(), **(text_encoder_modules() if text_encoder else {})}
    sd = {}
    for name, (fan_in, fan_out) in modules.items():
        sd[f"{name}.lora_down.weight"] = (torch.randn(rank, fan_in, generator=generator) * 0.1).to(dtype)
        sd[f"{name}.lora_up.weight"] = (torch.randn(fan_out, rank, generator=generator) * 0.1).to(dtype)
        if alpha is not None:
            sd[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return sd


def write_kohya_lora(path, **kwargs):
    save_file(kohya_lora(**kwargs), str(path))
    return path
