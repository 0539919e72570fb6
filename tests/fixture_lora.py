"""Random-weight SD1.5 LoRAs in the kohya layout (what civitai style LoRAs are).

kohya names each patched module by its diffusers path with dots as underscores:
`lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q` (UNet) and
`lora_te_text_model_encoder_layers_0_self_attn_q_proj` (CLIP-L), each with `.lora_down.weight`
[rank, in], `.lora_up.weight` [out, rank] and, in most files, a scalar `.alpha`.
"""
import torch
from safetensors.torch import save_file

from fixture_selfcheck import models  # the generators are the self-check's (selfcheck/models.py)

SD15_CHANNELS = models.SD15_CHANNELS[:3]
unet_attentions, unet_modules, text_encoder_modules = models.unet_attentions, models.unet_modules, models.text_encoder_modules
kohya_lora = models.kohya_lora


def write_kohya_lora(path, **kwargs):
    save_file(kohya_lora(**kwargs), str(path))
    return path


def to_peft(kohya):
    """The diffusers/PEFT naming of a kohya LoRA: `unet.<dotted path>.lora_A.weight` (down), `lora_B` (up)."""
    out = {}
    for key, value in kohya.items():
        module, _, part = key.partition(".")
        if part == "alpha":
            continue  # PEFT files keep alpha in their config, not in the weights
        prefix, path = ("unet.", module[len("lora_unet_"):]) if module.startswith("lora_unet_") else \
            ("text_encoder.", module[len("lora_te_"):])
        path = _dotted(path)
        out[f"{prefix}{path}.{'lora_A' if part.startswith('lora_down') else 'lora_B'}.weight"] = value
    return out


def _dotted(path):
    """kohya's underscored module path back to diffusers' dotted one."""
    for name in ("down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_out", "text_model", "self_attn",
                 "q_proj", "k_proj", "v_proj", "out_proj", "to_q", "to_k", "to_v"):
        path = path.replace(name, name.replace("_", "\0"))
    return path.replace("_", ".").replace("\0", "_")


def to_loha(kohya, rank=4):
    """A LoHa (LyCORIS) file with the same modules: hada_w1_a/b, hada_w2_a/b and alpha."""
    generator = torch.Generator().manual_seed(1)
    out = {}
    for key, value in kohya.items():
        module, _, part = key.partition(".")
        if part.startswith("lora_down"):
            fan_in = value.shape[1]
            fan_out = kohya[f"{module}.lora_up.weight"].shape[0]
            for w in ("w1", "w2"):
                out[f"{module}.hada_{w}_a"] = (torch.randn(fan_out, rank, generator=generator) * 0.1).to(value.dtype)
                out[f"{module}.hada_{w}_b"] = (torch.randn(rank, fan_in, generator=generator) * 0.1).to(value.dtype)
            out[f"{module}.alpha"] = torch.tensor(float(rank), dtype=value.dtype)
    return out


# --- an SDXL LoRA, as kohya's sd-scripts writes one ------------------------------------------------
# Key layout source: kohya-ss/sd-scripts networks/lora.py (LoRANetwork: prefixes "lora_unet", and
# for SDXL's two text encoders "lora_te1" (CLIP-L) and "lora_te2" (OpenCLIP bigG); targets every
# Linear of the UNet's Transformer2DModel blocks and of CLIPAttention/CLIPMLP), applied to the
# SDXL UNet of library/sdxl_original_unet.py, which keeps the original (SGM) block names:
# attention at input_blocks 4, 5 (640 channels, 2 transformer blocks each) and 7, 8 (1280, 10
# blocks), middle_block.1 (1280, 10), output_blocks 0-2 (1280, 10) and 3-5 (640, 2); linear
# proj_in/proj_out; cross-attention from the 2048-wide joined text features.
SDXL_CONTEXT = 2048
SDXL_ATTENTIONS = (  # (kohya block name, level: 0 = the 640 level, 1 = the 1280 level, transformer depth)
    [(f"input_blocks_{i}_1", 0, 2) for i in (4, 5)] + [(f"input_blocks_{i}_1", 1, 10) for i in (7, 8)]
    + [("middle_block_1", 1, 10)]
    + [(f"output_blocks_{i}_1", 1, 10) for i in (0, 1, 2)] + [(f"output_blocks_{i}_1", 0, 2) for i in (3, 4, 5)])


def sdxl_unet_modules(channels=(640, 1280)):
    """{kohya name: (in, out)} of a kohya SDXL LoRA's UNet part; `channels` other than SDXL's own
    (640, 1280) keep the layout at other widths (so that some layers fit a small test UNet)."""
    modules = {}
    for block, level, depth in SDXL_ATTENTIONS:
        c = channels[level]
        modules[f"lora_unet_{block}_proj_in"] = (c, c)
        modules[f"lora_unet_{block}_proj_out"] = (c, c)
        for t in range(depth):
            base = f"lora_unet_{block}_transformer_blocks_{t}"
            for attn, kv in (("attn1", c), ("attn2", SDXL_CONTEXT)):
                modules[f"{base}_{attn}_to_q"] = (c, c)
                modules[f"{base}_{attn}_to_k"] = (kv, c)
                modules[f"{base}_{attn}_to_v"] = (kv, c)
                modules[f"{base}_{attn}_to_out_0"] = (c, c)
            modules[f"{base}_ff_net_0_proj"] = (c, 8 * c)
            modules[f"{base}_ff_net_2"] = (4 * c, c)
    return modules


def sdxl_text_encoder_modules():
    """lora_te1_* (CLIP-L: 12 layers of 768) and lora_te2_* (OpenCLIP bigG: 32 layers of 1280)."""
    modules = {}
    for prefix, layers, width in (("lora_te1", 12, 768), ("lora_te2", 32, 1280)):
        for i in range(layers):
            base = f"{prefix}_text_model_encoder_layers_{i}"
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                modules[f"{base}_self_attn_{proj}"] = (width, width)
            modules[f"{base}_mlp_fc1"] = (width, 4 * width)
            modules[f"{base}_mlp_fc2"] = (4 * width, width)
    return modules


def sdxl_kohya_lora(rank=4, alpha=4.0, seed=0, channels=(640, 1280), text_encoders=True, dtype=torch.float16):
    generator = torch.Generator().manual_seed(seed)
    modules = {**sdxl_unet_modules(channels), **(sdxl_text_encoder_modules() if text_encoders else {})}
    sd = {}
    for name, (fan_in, fan_out) in modules.items():
        sd[f"{name}.lora_down.weight"] = (torch.randn(rank, fan_in, generator=generator) * 0.1).to(dtype)
        sd[f"{name}.lora_up.weight"] = (torch.randn(fan_out, rank, generator=generator) * 0.1).to(dtype)
        sd[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return sd
