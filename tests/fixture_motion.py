"""Random-weight motion-module files in the real key layouts (REFERENCE.md §3)."""
import math

import torch
from safetensors.torch import save_file

SD15_CHANNELS = (320, 640, 1280, 1280)
FAMILIES = {  # family: (mid block, positional-encoding frames or None, I2V image encoder)
    "animatelcm_t2v": (True, None, False),
    "animatelcm_i2v": (True, None, True),
    "v1": (False, 24, False),
    "v2": (True, 32, False),
    "v3": (False, 32, False),
}


def _sinusoid(frames, c):
    position = torch.arange(frames, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, c, 2, dtype=torch.float32) * (-math.log(10000.0) / c))
    pe = torch.zeros(1, frames, c)
    pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


def layer_weights(c, generator, pe_frames=None, zero_out=False):
    """One motion layer in the original naming, relative to `...motion_modules.J.`."""
    def rand(*shape):
        return torch.randn(*shape, generator=generator) / math.sqrt(shape[-1])
    t = "temporal_transformer."
    w = {t + "norm.weight": 1 + 0.1 * torch.randn(c, generator=generator), t + "norm.bias": 0.1 * torch.randn(c, generator=generator),
         t + "proj_in.weight": rand(c, c), t + "proj_in.bias": 0.1 * torch.randn(c, generator=generator),
         t + "proj_out.weight": torch.zeros(c, c) if zero_out else rand(c, c),
         t + "proj_out.bias": torch.zeros(c) if zero_out else 0.1 * torch.randn(c, generator=generator)}
    b = t + "transformer_blocks.0."
    for a in range(2):
        for proj in ("to_q", "to_k", "to_v"):
            w[f"{b}attention_blocks.{a}.{proj}.weight"] = rand(c, c)
        w[f"{b}attention_blocks.{a}.to_out.0.weight"] = rand(c, c)
        w[f"{b}attention_blocks.{a}.to_out.0.bias"] = 0.1 * torch.randn(c, generator=generator)
        if pe_frames:
            w[f"{b}attention_blocks.{a}.pos_encoder.pe"] = _sinusoid(pe_frames, c)
        w[f"{b}norms.{a}.weight"] = 1 + 0.1 * torch.randn(c, generator=generator)
        w[f"{b}norms.{a}.bias"] = 0.1 * torch.randn(c, generator=generator)
    w[b + "ff.net.0.proj.weight"], w[b + "ff.net.0.proj.bias"] = rand(8 * c, c), 0.1 * torch.randn(8 * c, generator=generator)
    w[b + "ff.net.2.weight"], w[b + "ff.net.2.bias"] = rand(c, 4 * c), 0.1 * torch.randn(c, generator=generator)
    w[b + "ff_norm.weight"], w[b + "ff_norm.bias"] = 1 + 0.1 * torch.randn(c, generator=generator), 0.1 * torch.randn(c, generator=generator)
    return w


def positions(channels=SD15_CHANNELS, mid=True, levels=4):
    """{position: channels} in diffusers' UNet3D block numbering."""
    out = {f"down_blocks.{i}.motion_modules.{j}": channels[i] for i in range(levels) for j in range(2)}
    out.update({f"up_blocks.{i}.motion_modules.{j}": channels[levels - 1 - i] for i in range(levels) for j in range(3)})
    if mid:
        out["mid_block.motion_modules.0"] = channels[levels - 1]
    return out


def image_encoder_weights(channels, generator, latent_channels=4):
    """AnimateLCM-I2V's `img_encoder.*`, random, at any width: the product's stand-in generator
    (pipeline/random_weights.py, key list from the official Adapter), so tests and stand-ins agree."""
    import importlib

    import comfy_host
    random_weights = importlib.import_module(comfy_host.start().pack.__name__ + ".pipeline.random_weights")
    return random_weights.image_encoder_weights(channels, generator, latent_channels)


def motion_state_dict(family, channels=SD15_CHANNELS, seed=0, dtype=torch.float32, levels=4, zero_out=False):
    mid, pe_frames, i2v = FAMILIES[family]
    generator = torch.Generator().manual_seed(seed)
    sd = {}
    for position, c in positions(channels, mid, levels).items():
        for k, v in layer_weights(c, generator, pe_frames, zero_out).items():
            sd[f"{position}.{k}"] = v
    if i2v:
        sd.update(image_encoder_weights(channels, generator))
    return {k: v.to(dtype) for k, v in sd.items()}


def to_diffusers(sd):
    """The diffusers MotionAdapter naming of an original-naming state dict (as diffusers' converter writes it)."""
    out = {}
    for k, v in sd.items():
        out[(k.replace(".norms.0", ".norm1").replace(".norms.1", ".norm2").replace(".ff_norm", ".norm3")
             .replace(".attention_blocks.0", ".attn1").replace(".attention_blocks.1", ".attn2")
             .replace(".pos_encoder", ".pos_embed").replace(".temporal_transformer", ""))] = v
    return out


def save_pickle(sd, path):
    torch.save(sd, path)


def save_safetensors(sd, path):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


LORA_PROJECTIONS = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}  # LoRA name: module name


def motion_lora_state_dict(channels=SD15_CHANNELS, rank=4, mid=True, seed=0, dtype=torch.float32):
    """An AnimateDiff v2 motion LoRA (v2_lora_ZoomIn.ckpt's layout): a down/up pair for q, k, v and out of
    both temporal attentions of every motion layer."""
    generator = torch.Generator().manual_seed(seed)
    sd = {}
    for position, c in positions(channels, mid).items():
        for a in range(2):
            for proj in LORA_PROJECTIONS:
                p = f"{position}.temporal_transformer.transformer_blocks.0.attention_blocks.{a}.processor.{proj}_lora."
                sd[p + "down.weight"] = torch.randn(rank, c, generator=generator) / rank
                sd[p + "up.weight"] = torch.randn(c, rank, generator=generator) / math.sqrt(c)
    return {k: v.to(dtype) for k, v in sd.items()}


def motion_lora_target(lora_key):
    """The motion-module weight a LoRA down/up key merges onto."""
    attention, rest = lora_key.split(".processor.")
    return f"{attention}.{LORA_PROJECTIONS[rest.split('_lora.')[0]]}.weight"
