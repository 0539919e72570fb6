"""Tiny random-weight models for the self-check (and the tests), made in memory in the real layouts.

- an SD1.5-layout UNet at channels 32/64/128/128, built by ComfyUI's own SD15 model class;
- an analytic UNet: ε in closed form (oracles.analytic_eps), so a whole sampling run has a float64
  reference; it keeps the tiny UNet's blocks, so the motion nodes patch it as they patch any SD1.5 UNet;
- motion modules of each format, motion LoRAs and kohya LoRAs at those widths (the released files' keys).
Nothing here is a trained model.
"""
import math

import torch

from ..stand_ins.random_weights import (diffusers_naming, image_encoder_weights, motion_layer, position_table,
                                        random_tensor, unet_shapes)

TINY_CHANNELS = (32, 64, 128, 128)
SD15_CHANNELS = (320, 640, 1280, 1280)
TEXT_WIDTH = 768


# --- UNets -----------------------------------------------------------------------------------------

def tiny_unet_state_dict(seed=0, channels=TINY_CHANNELS):
    generator = torch.Generator().manual_seed(seed)
    return {k: random_tensor(k, shape, generator, torch.float32)
            for k, shape in unet_shapes(prefix="", ch=channels).items()}


def tiny_sd15_model(seed=0, channels=TINY_CHANNELS, dtype=torch.float32, device=None):
    """A ComfyUI MODEL (ModelPatcher) of the SD1.5 layout at `channels`, loaded on `device` (default: CPU)."""
    import comfy.model_detection
    import comfy.model_patcher
    import comfy.supported_models
    state_dict = tiny_unet_state_dict(seed, channels)
    config = comfy.supported_models.SD15(comfy.model_detection.detect_unet_config(state_dict, ""))
    if dtype != torch.float32:
        config.set_inference_dtype(dtype, None)
    with torch.inference_mode(False):
        model = config.get_model({})
        model.diffusion_model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()})
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=device or cpu, offload_device=cpu)


class AnalyticUNet(torch.nn.Module):
    """ε = oracles.analytic_eps(x, t, mean of the text embedding, frame_mix), in float32.

    Holds the blocks of a real SD1.5-layout UNet under their usual names, so nodes that patch blocks
    (Apply Motion Module, Image to Video) find them; it does not run them."""

    dtype = torch.float32  # what ComfyUI reads off a UNet

    def __init__(self, unet, frame_mix=0.0):
        super().__init__()
        self.input_blocks, self.middle_block, self.output_blocks = unet.input_blocks, unet.middle_block, unet.output_blocks
        self.frame_mix = frame_mix
        self.calls = []

    def forward(self, x, timesteps, context=None, transformer_options=None, **kwargs):
        self.calls.append(x.shape[0])
        t = timesteps.view(-1, 1, 1, 1).to(x.dtype)
        eps = 0.3 * x + 0.1 * torch.cos(t / 300.0) + context.mean(dim=(1, 2)).view(-1, 1, 1, 1).to(x.dtype)
        if self.frame_mix:  # each video (cond / uncond chunk) sees the mean of its own frames
            videos = len((transformer_options or {}).get("cond_or_uncond", [0]))
            chunks = x.chunk(videos)
            eps = eps + self.frame_mix * torch.cat([c.mean(dim=0, keepdim=True).expand_as(c) for c in chunks])
        return eps


def analytic_model(frame_mix=0.0, device=None):
    """A tiny SD1.5 MODEL whose diffusion model is an AnalyticUNet (an object patch: ComfyUI's own wrapping runs)."""
    model = tiny_sd15_model(device=device)
    unet = AnalyticUNet(model.model.diffusion_model, frame_mix)
    model.add_object_patch("diffusion_model", unet)
    return model, unet


def conditioning(value, frames=1):
    """CONDITIONING whose text embedding is `value` everywhere (what the analytic UNet reads)."""
    return [[torch.full((frames, 77, TEXT_WIDTH), value), {}]]


# --- motion modules (motion/formats.py) ----------------------------------------------------------------

FAMILIES = {  # family: (mid block, positional-encoding frames or None, I2V image encoder)
    "animatelcm_t2v": (True, None, False),
    "animatelcm_i2v": (True, None, True),
    "v1": (False, 24, False),
    "v2": (True, 32, False),
    "v3": (False, 32, False),
}


def layer_weights(c, generator, pe_frames=None, zero_out=False):
    """One motion layer in the original naming, relative to `...motion_modules.J.`, with AnimateDiff v1/v2's
    stored position table when `pe_frames` is given."""
    w = motion_layer(c, generator, zero_out)
    if pe_frames:
        for a in range(2):
            w[f"temporal_transformer.transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe"] = position_table(pe_frames, c)
    return w


def positions(channels=SD15_CHANNELS, mid=True, levels=4):
    """{position: channels} in diffusers' UNet3D block numbering."""
    out = {f"down_blocks.{i}.motion_modules.{j}": channels[i] for i in range(levels) for j in range(2)}
    out.update({f"up_blocks.{i}.motion_modules.{j}": channels[levels - 1 - i] for i in range(levels) for j in range(3)})
    if mid:
        out["mid_block.motion_modules.0"] = channels[levels - 1]
    return out


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
    """The diffusers MotionAdapter naming of an original-naming state dict, as a saved MotionAdapter has it."""
    return diffusers_naming(sd)


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


# --- SD1.5 LoRAs in the kohya layout -------------------------------------------------------------------

def unet_attentions(channels=SD15_CHANNELS[:3]):
    """(diffusers attention block, channels) of SD1.5's 16 transformer blocks."""
    c0, c1, c2 = channels
    return ([(f"down_blocks_{i}_attentions_{j}", c) for i, c in enumerate(channels) for j in range(2)]
            + [("mid_block_attentions_0", c2)]
            + [(f"up_blocks_{i}_attentions_{j}", c) for i, c in ((1, c2), (2, c1), (3, c0)) for j in range(3)])


def unet_modules(channels=SD15_CHANNELS[:3], feed_forward=False):
    """{kohya name: (in, out)} for the attention projections of every SD1.5 transformer block
    (and, with feed_forward, its proj_in/proj_out convolutions and GEGLU feed-forward)."""
    modules = {}
    for block, c in unet_attentions(channels):
        base = f"lora_unet_{block}_transformer_blocks_0"
        if feed_forward:
            modules[f"lora_unet_{block}_proj_in"] = (c, c, 1)
            modules[f"lora_unet_{block}_proj_out"] = (c, c, 1)
            modules[f"{base}_ff_net_0_proj"] = (c, 8 * c)
            modules[f"{base}_ff_net_2"] = (4 * c, c)
        for attn, kv in (("attn1", c), ("attn2", TEXT_WIDTH)):
            modules[f"{base}_{attn}_to_q"] = (c, c)
            modules[f"{base}_{attn}_to_k"] = (kv, c)
            modules[f"{base}_{attn}_to_v"] = (kv, c)
            modules[f"{base}_{attn}_to_out_0"] = (c, c)
    return modules


def text_encoder_modules():
    return {f"lora_te_text_model_encoder_layers_{i}_self_attn_{p}": (TEXT_WIDTH, TEXT_WIDTH)
            for i in range(12) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}


def kohya_lora(rank=4, alpha=None, seed=0, text_encoder=True, dtype=torch.float16, channels=SD15_CHANNELS[:3],
               feed_forward=False):
    generator = torch.Generator().manual_seed(seed)
    modules = {**unet_modules(channels, feed_forward), **(text_encoder_modules() if text_encoder else {})}
    sd = {}
    for name, (fan_in, fan_out, *conv) in modules.items():
        kernel = (1, 1) if conv else ()  # 1x1 convolutions keep their spatial dims in the LoRA
        sd[f"{name}.lora_down.weight"] = (torch.randn(rank, fan_in, *kernel, generator=generator) * 0.1).to(dtype)
        sd[f"{name}.lora_up.weight"] = (torch.randn(fan_out, rank, *kernel, generator=generator) * 0.1).to(dtype)
        if alpha is not None:
            sd[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return sd
