"""Random-weight model files in the real key layouts, for trying a workflow without weights
(`render.py --stand-ins`) and for the tests: nothing here is a trained model.

SD1.5 checkpoint: every key and shape of a real `v1-5-pruned-emaonly.safetensors` UNet, VAE and CLIP-L text
encoder, so ComfyUI's CheckpointLoaderSimple detects it as SD1.5 and loads it with nothing
missing. Weights are scaled by 1/sqrt(fan_in) so activations stay finite through the network.
AnimateLCM t2v motion module: the released file's layout (wangfuyun/AnimateLCM's AnimateLCM_sd15_t2v.ckpt: 8 down, 12 up, 1 mid
temporal layer, no pos_encoder keys; motion/formats.py reads it). AnimateDiff-Lightning motion modules: both published layouts, to
the byte. SD1.5 LoRA: the kohya layout civitai style LoRAs use.
"""
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_CHANNELS = (320, 640, 1280, 1280)
TEXT_WIDTH = 768


def _resblock(shapes, prefix, cin, cout, emb):
    shapes[f"{prefix}.in_layers.0.weight"] = (cin,)
    shapes[f"{prefix}.in_layers.0.bias"] = (cin,)
    shapes[f"{prefix}.in_layers.2.weight"] = (cout, cin, 3, 3)
    shapes[f"{prefix}.in_layers.2.bias"] = (cout,)
    shapes[f"{prefix}.emb_layers.1.weight"] = (cout, emb)
    shapes[f"{prefix}.emb_layers.1.bias"] = (cout,)
    shapes[f"{prefix}.out_layers.0.weight"] = (cout,)
    shapes[f"{prefix}.out_layers.0.bias"] = (cout,)
    shapes[f"{prefix}.out_layers.3.weight"] = (cout, cout, 3, 3)
    shapes[f"{prefix}.out_layers.3.bias"] = (cout,)
    if cin != cout:
        shapes[f"{prefix}.skip_connection.weight"] = (cout, cin, 1, 1)
        shapes[f"{prefix}.skip_connection.bias"] = (cout,)


def _transformer(shapes, prefix, c, context=TEXT_WIDTH):
    for name in ("norm",):
        shapes[f"{prefix}.{name}.weight"] = (c,)
        shapes[f"{prefix}.{name}.bias"] = (c,)
    for name in ("proj_in", "proj_out"):
        shapes[f"{prefix}.{name}.weight"] = (c, c, 1, 1)
        shapes[f"{prefix}.{name}.bias"] = (c,)
    block = f"{prefix}.transformer_blocks.0"
    for attn, kv in (("attn1", c), ("attn2", context)):
        shapes[f"{block}.{attn}.to_q.weight"] = (c, c)
        shapes[f"{block}.{attn}.to_k.weight"] = (c, kv)
        shapes[f"{block}.{attn}.to_v.weight"] = (c, kv)
        shapes[f"{block}.{attn}.to_out.0.weight"] = (c, c)
        shapes[f"{block}.{attn}.to_out.0.bias"] = (c,)
    shapes[f"{block}.ff.net.0.proj.weight"] = (8 * c, c)
    shapes[f"{block}.ff.net.0.proj.bias"] = (8 * c,)
    shapes[f"{block}.ff.net.2.weight"] = (c, 4 * c)
    shapes[f"{block}.ff.net.2.bias"] = (c,)
    for norm in ("norm1", "norm2", "norm3"):
        shapes[f"{block}.{norm}.weight"] = (c,)
        shapes[f"{block}.{norm}.bias"] = (c,)


def unet_shapes(prefix="model.diffusion_model.", ch=UNET_CHANNELS):
    """The SD1.5 UNet; `ch` other than (320, 640, 1280, 1280) gives the same layout at another width."""
    s = {}
    emb = 4 * ch[0]
    s["time_embed.0.weight"], s["time_embed.0.bias"] = (emb, ch[0]), (emb,)
    s["time_embed.2.weight"], s["time_embed.2.bias"] = (emb, emb), (emb,)
    s["input_blocks.0.0.weight"], s["input_blocks.0.0.bias"] = (ch[0], 4, 3, 3), (ch[0],)
    skips, block, cin = [ch[0]], 1, ch[0]
    for level, cout in enumerate(ch):
        for _ in range(2):
            _resblock(s, f"input_blocks.{block}.0", cin, cout, emb)
            if level < 3:
                _transformer(s, f"input_blocks.{block}.1", cout)
            cin = cout
            skips.append(cout)
            block += 1
        if level < 3:
            s[f"input_blocks.{block}.0.op.weight"] = (cout, cout, 3, 3)
            s[f"input_blocks.{block}.0.op.bias"] = (cout,)
            skips.append(cout)
            block += 1
    _resblock(s, "middle_block.0", ch[3], ch[3], emb)
    _transformer(s, "middle_block.1", ch[3])
    _resblock(s, "middle_block.2", ch[3], ch[3], emb)
    block = 0
    for level, cout in reversed(list(enumerate(ch))):
        for i in range(3):
            _resblock(s, f"output_blocks.{block}.0", cin + skips.pop(), cout, emb)
            cin = cout
            sub = 1
            if level < 3:
                _transformer(s, f"output_blocks.{block}.1", cout)
                sub = 2
            if level > 0 and i == 2:
                s[f"output_blocks.{block}.{sub}.conv.weight"] = (cout, cout, 3, 3)
                s[f"output_blocks.{block}.{sub}.conv.bias"] = (cout,)
            block += 1
    s["out.0.weight"], s["out.0.bias"] = (ch[0],), (ch[0],)
    s["out.2.weight"], s["out.2.bias"] = (4, ch[0], 3, 3), (4,)
    return {prefix + k: v for k, v in s.items()}


def _vae_resnet(s, prefix, cin, cout):
    s[f"{prefix}.norm1.weight"], s[f"{prefix}.norm1.bias"] = (cin,), (cin,)
    s[f"{prefix}.conv1.weight"], s[f"{prefix}.conv1.bias"] = (cout, cin, 3, 3), (cout,)
    s[f"{prefix}.norm2.weight"], s[f"{prefix}.norm2.bias"] = (cout,), (cout,)
    s[f"{prefix}.conv2.weight"], s[f"{prefix}.conv2.bias"] = (cout, cout, 3, 3), (cout,)
    if cin != cout:
        s[f"{prefix}.nin_shortcut.weight"], s[f"{prefix}.nin_shortcut.bias"] = (cout, cin, 1, 1), (cout,)


def _vae_mid(s, prefix, c):
    _vae_resnet(s, f"{prefix}.block_1", c, c)
    s[f"{prefix}.attn_1.norm.weight"], s[f"{prefix}.attn_1.norm.bias"] = (c,), (c,)
    for name in ("q", "k", "v", "proj_out"):
        s[f"{prefix}.attn_1.{name}.weight"], s[f"{prefix}.attn_1.{name}.bias"] = (c, c, 1, 1), (c,)
    _vae_resnet(s, f"{prefix}.block_2", c, c)


def vae_shapes(prefix="first_stage_model."):
    s = {}
    ch = (128, 256, 512, 512)
    s["encoder.conv_in.weight"], s["encoder.conv_in.bias"] = (ch[0], 3, 3, 3), (ch[0],)
    cin = ch[0]
    for level, cout in enumerate(ch):
        for j in range(2):
            _vae_resnet(s, f"encoder.down.{level}.block.{j}", cin, cout)
            cin = cout
        if level < 3:
            s[f"encoder.down.{level}.downsample.conv.weight"] = (cout, cout, 3, 3)
            s[f"encoder.down.{level}.downsample.conv.bias"] = (cout,)
    _vae_mid(s, "encoder.mid", ch[3])
    s["encoder.norm_out.weight"], s["encoder.norm_out.bias"] = (ch[3],), (ch[3],)
    s["encoder.conv_out.weight"], s["encoder.conv_out.bias"] = (8, ch[3], 3, 3), (8,)
    s["quant_conv.weight"], s["quant_conv.bias"] = (8, 8, 1, 1), (8,)
    s["post_quant_conv.weight"], s["post_quant_conv.bias"] = (4, 4, 1, 1), (4,)
    s["decoder.conv_in.weight"], s["decoder.conv_in.bias"] = (ch[3], 4, 3, 3), (ch[3],)
    _vae_mid(s, "decoder.mid", ch[3])
    cin = ch[3]
    for level in reversed(range(4)):
        cout = ch[level]
        for j in range(3):
            _vae_resnet(s, f"decoder.up.{level}.block.{j}", cin, cout)
            cin = cout
        if level > 0:
            s[f"decoder.up.{level}.upsample.conv.weight"] = (cout, cout, 3, 3)
            s[f"decoder.up.{level}.upsample.conv.bias"] = (cout,)
    s["decoder.norm_out.weight"], s["decoder.norm_out.bias"] = (ch[0],), (ch[0],)
    s["decoder.conv_out.weight"], s["decoder.conv_out.bias"] = (3, ch[0], 3, 3), (3,)
    return {prefix + k: v for k, v in s.items()}


def clip_shapes(prefix="cond_stage_model.transformer.text_model."):
    s = {"embeddings.token_embedding.weight": (49408, TEXT_WIDTH),
         "embeddings.position_embedding.weight": (77, TEXT_WIDTH),
         "final_layer_norm.weight": (TEXT_WIDTH,), "final_layer_norm.bias": (TEXT_WIDTH,)}
    for i in range(12):
        p = f"encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[f"{p}.self_attn.{proj}.weight"], s[f"{p}.self_attn.{proj}.bias"] = (TEXT_WIDTH, TEXT_WIDTH), (TEXT_WIDTH,)
        for norm in ("layer_norm1", "layer_norm2"):
            s[f"{p}.{norm}.weight"], s[f"{p}.{norm}.bias"] = (TEXT_WIDTH,), (TEXT_WIDTH,)
        s[f"{p}.mlp.fc1.weight"], s[f"{p}.mlp.fc1.bias"] = (4 * TEXT_WIDTH, TEXT_WIDTH), (4 * TEXT_WIDTH,)
        s[f"{p}.mlp.fc2.weight"], s[f"{p}.mlp.fc2.bias"] = (TEXT_WIDTH, 4 * TEXT_WIDTH), (TEXT_WIDTH,)
    return {prefix + k: v for k, v in s.items()}


def random_tensor(key, shape, generator, dtype=torch.float16):
    """Norm scales 1, biases 0, everything else N(0, 1/fan_in)."""
    is_norm = any(n in key for n in ("norm", "in_layers.0", "out_layers.0", "out.0.")) and len(shape) == 1
    if key.endswith(".bias"):
        return torch.zeros(shape, dtype=dtype)
    if is_norm:
        return torch.ones(shape, dtype=dtype)
    if "embedding" in key:
        return (torch.randn(shape, generator=generator) * 0.02).to(dtype)
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return (torch.randn(shape, generator=generator) / math.sqrt(fan_in)).to(dtype)


def sd15_shapes():
    return {**unet_shapes(), **vae_shapes(), **clip_shapes()}


def write_sd15_checkpoint(path, seed=0, dtype=torch.float16):
    """Write the full-size random SD1.5 checkpoint (about 2 GB in fp16) atomically to `path`."""
    path = Path(path)
    generator = torch.Generator().manual_seed(seed)
    tensors = {k: random_tensor(k, shape, generator, dtype) for k, shape in sd15_shapes().items()}
    tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    tmp = path.with_suffix(".partial")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    return path


# --- SD1.5 ControlNet -----------------------------------------------------------------------------

def controlnet_shapes(ch=UNET_CHANNELS, hint_channels=3):
    """An SD1.5 ControlNet as lllyasviel's cldm.py lays it out (ControlNet 1.1): the UNet's time embedding,
    input and middle blocks, the hint encoder (8 convolutions, 3 -> 16 -> 16 -> 32 -> 32 -> 96 -> 96 -> 256 ->
    320 channels), one 1x1 zero convolution per input block and one after the middle block. The fp16
    .safetensors files users download (control_v11p_sd15_canny_fp16.safetensors) hold these keys bare; the .pth
    releases under `control_model.`."""
    unet = unet_shapes(prefix="", ch=ch)
    s = {k: v for k, v in unet.items() if k.startswith(("time_embed.", "input_blocks.", "middle_block."))}
    widths = [hint_channels, 16, 16, 32, 32, 96, 96, 256, ch[0]]
    for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
        s[f"input_hint_block.{2 * i}.weight"], s[f"input_hint_block.{2 * i}.bias"] = (cout, cin, 3, 3), (cout,)
    blocks = 1 + 3 * len(ch) - 1  # conv_in, then two resnets per level and a downsampler below all but the last
    for block in range(blocks):
        width = unet[f"input_blocks.{block}.0.weight"][0] if block == 0 else \
            next(shape[0] for key, shape in unet.items() if key.startswith(f"input_blocks.{block}.0.")
                 and key.endswith(("out_layers.3.weight", "op.weight")))
        s[f"zero_convs.{block}.0.weight"], s[f"zero_convs.{block}.0.bias"] = (width, width, 1, 1), (width,)
    s["middle_block_out.0.weight"], s["middle_block_out.0.bias"] = (ch[-1], ch[-1], 1, 1), (ch[-1],)
    return s


def sd15_controlnet(seed=0, dtype=torch.float16, prefix=""):
    """A random-weight SD1.5 ControlNet state dict (about 720 MB in fp16), `prefix` before every key."""
    generator = torch.Generator().manual_seed(seed)
    return {prefix + k: random_tensor(k, shape, generator, dtype) for k, shape in controlnet_shapes().items()}


# --- AnimateLCM t2v motion module -------------------------------------------------------------

def motion_positions(channels=UNET_CHANNELS):
    """{position: channels} of a full SD1.5 motion module: 2 per down level, 3 per up level, 1 in the middle."""
    positions = {f"down_blocks.{i}.motion_modules.{j}": channels[i] for i in range(4) for j in range(2)}
    positions.update({f"up_blocks.{i}.motion_modules.{j}": channels[3 - i] for i in range(4) for j in range(3)})
    positions["mid_block.motion_modules.0"] = channels[3]
    return positions


def motion_layer(c, generator, zero_out=False):
    """One temporal layer in the original naming, relative to `...motion_modules.J.`; `zero_out`: proj_out
    zero, as AnimateDiff makes a layer before training (it adds nothing)."""
    def rand(*shape):
        return torch.randn(*shape, generator=generator) / math.sqrt(shape[-1])

    def small(n):
        return 0.1 * torch.randn(n, generator=generator)
    t = "temporal_transformer."
    w = {t + "norm.weight": 1 + small(c), t + "norm.bias": small(c), t + "proj_in.weight": rand(c, c),
         t + "proj_in.bias": small(c), t + "proj_out.weight": torch.zeros(c, c) if zero_out else rand(c, c),
         t + "proj_out.bias": torch.zeros(c) if zero_out else small(c)}
    b = t + "transformer_blocks.0."
    for a in range(2):
        for proj in ("to_q", "to_k", "to_v"):
            w[f"{b}attention_blocks.{a}.{proj}.weight"] = rand(c, c)
        w[f"{b}attention_blocks.{a}.to_out.0.weight"] = rand(c, c)
        w[f"{b}attention_blocks.{a}.to_out.0.bias"] = small(c)
        w[f"{b}norms.{a}.weight"], w[f"{b}norms.{a}.bias"] = 1 + small(c), small(c)
    w[b + "ff.net.0.proj.weight"], w[b + "ff.net.0.proj.bias"] = rand(8 * c, c), small(8 * c)
    w[b + "ff.net.2.weight"], w[b + "ff.net.2.bias"] = rand(c, 4 * c), small(c)
    w[b + "ff_norm.weight"], w[b + "ff_norm.bias"] = 1 + small(c), small(c)
    return w


def animatelcm_motion_module(seed=0, dtype=torch.float16, channels=UNET_CHANNELS):
    """The state dict of an AnimateLCM_sd15_t2v.ckpt-shaped motion module (about 900 MB in fp16)."""
    generator = torch.Generator().manual_seed(seed)
    positions = motion_positions(channels)
    return {f"{position}.{k}": v.to(dtype) for position, c in positions.items()
            for k, v in motion_layer(c, generator).items()}


def animatelcm_i2v_image_encoder(seed=1, dtype=torch.float16, channels=UNET_CHANNELS):
    """AnimateLCM_sd15_i2v.ckpt's `img_encoder.*` (about 80 M parameters)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: v.to(dtype) for k, v in image_encoder_weights(channels, generator).items()}


def image_encoder_weights(channels, generator, latent_channels=4):
    """AnimateLCM-I2V's image encoder, random, in the official Adapter's key layout
    (animatelcm/models/adapter.py, Adapter(cin=4, nums_rb=2, ksize=1, sk=True, use_conv=False)):
    conv_in 3×3; per block body.N: in_conv 1×1 where the width changes, block1 3×3, block2 1×1.
    conv_in/block2/in_conv are trained away from their zero init, so all are random here."""
    def conv(c_out, c_in, k):
        return (torch.randn(c_out, c_in, k, k, generator=generator) / math.sqrt(c_in * k * k),
                0.1 * torch.randn(c_out, generator=generator))
    w = {}
    w["img_encoder.conv_in.weight"], w["img_encoder.conv_in.bias"] = conv(channels[0], latent_channels, 3)
    for i, c in enumerate(channels):
        for j in range(2):
            p, cin = f"img_encoder.body.{2 * i + j}.", (channels[i - 1] if i and not j else c)
            if cin != c:
                w[p + "in_conv.weight"], w[p + "in_conv.bias"] = conv(c, cin, 1)
            w[p + "block1.weight"], w[p + "block1.bias"] = conv(c, c, 3)
            w[p + "block2.weight"], w[p + "block2.bias"] = conv(c, c, 1)
    return w


def animatediff_motion_lora(rank=64, seed=0, dtype=torch.float32, channels=UNET_CHANNELS):
    """An AnimateDiff v2 motion LoRA (v2_lora_ZoomIn.ckpt's layout, about 77 MB at rank 64 in fp32): a
    down/up pair for q, k, v and out of both temporal attentions of every motion layer."""
    generator = torch.Generator().manual_seed(seed)
    positions = motion_positions(channels)
    sd = {}
    for position, c in positions.items():
        for a in range(2):
            for proj in ("to_q", "to_k", "to_v", "to_out"):
                key = f"{position}.temporal_transformer.transformer_blocks.0.attention_blocks.{a}.processor.{proj}_lora."
                sd[key + "down.weight"] = (torch.randn(rank, c, generator=generator) / rank).to(dtype)
                sd[key + "up.weight"] = (torch.randn(c, rank, generator=generator) / math.sqrt(c)).to(dtype)
    return sd


# --- SD1.5 LoRA (kohya) -----------------------------------------------------------------------

def _kohya_modules(text_encoder):
    """{kohya module name: (in, out)}: the attention projections of SD1.5's 16 transformer blocks
    (`lora_unet_<diffusers path with _>`) and, with text_encoder, CLIP-L's (`lora_te_...`)."""
    c0, c1, c2 = UNET_CHANNELS[:3]
    blocks = ([(f"down_blocks_{i}_attentions_{j}", c) for i, c in enumerate((c0, c1, c2)) for j in range(2)]
              + [("mid_block_attentions_0", c2)]
              + [(f"up_blocks_{i}_attentions_{j}", c) for i, c in ((1, c2), (2, c1), (3, c0)) for j in range(3)])
    modules = {}
    for block, c in blocks:
        for attn, kv in (("attn1", c), ("attn2", TEXT_WIDTH)):
            base = f"lora_unet_{block}_transformer_blocks_0_{attn}"
            modules.update({f"{base}_to_q": (c, c), f"{base}_to_k": (kv, c), f"{base}_to_v": (kv, c),
                            f"{base}_to_out_0": (c, c)})
    if text_encoder:
        modules.update({f"lora_te_text_model_encoder_layers_{i}_self_attn_{p}": (TEXT_WIDTH, TEXT_WIDTH)
                        for i in range(12) for p in ("q_proj", "k_proj", "v_proj", "out_proj")})
    return modules


def kohya_lora(rank=4, alpha=None, text_encoder=True, seed=0, dtype=torch.float16):
    generator = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (fan_in, fan_out) in _kohya_modules(text_encoder).items():
        sd[f"{name}.lora_down.weight"] = (torch.randn(rank, fan_in, generator=generator) * 0.1).to(dtype)
        sd[f"{name}.lora_up.weight"] = (torch.randn(fan_out, rank, generator=generator) * 0.1).to(dtype)
        if alpha is not None:
            sd[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return sd


# --- AnimateDiff-Lightning motion modules --------------------------------------------------------

def lightning_motion_module(form="comfyui", seed=0, dtype=torch.float16, channels=UNET_CHANNELS):
    """An AnimateDiff-Lightning file's state dict in the layout of `animatediff_lightning_{N}step_{form}.safetensors`
    (ByteDance publishes every step count in both layouts). comfyui: AnimateDiff v2's original naming, a
    mid-block layer and two 32-frame sinusoid position tables per layer; saved without metadata it is the
    published 908,929,664 bytes. diffusers: the same in diffusers' MotionAdapter naming (907,702,248 bytes)."""
    generator = torch.Generator().manual_seed(seed)
    positions = motion_positions(channels)
    sd = {}
    for position, c in positions.items():
        layer = motion_layer(c, generator)
        for a in range(2):
            layer[f"temporal_transformer.transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe"] = position_table(32, c)
        sd.update({f"{position}.{k}": v.to(dtype) for k, v in layer.items()})
    return diffusers_naming(sd) if form == "diffusers" else sd


def position_table(frames, c):
    """AnimateDiff's stored `pos_encoder.pe` [1, frames, c]: sin on even, cos on odd channels."""
    position = torch.arange(frames, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, c, 2, dtype=torch.float32) * (-math.log(10000.0) / c))
    pe = torch.zeros(1, frames, c)
    pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


def diffusers_naming(sd):
    """An original-naming motion module as a saved diffusers MotionAdapter holds it (diffusers'
    convert_animatediff_motion_module_to_diffusers.py, then save_pretrained): the converter drops the two
    `pos_encoder.pe` of each layer, and the adapter saves its own sinusoid buffer, one per transformer block,
    `transformer_blocks.0.pos_embed.pe` (diffusers' BasicTransformerBlock adds it before attn1 and attn2 alike)."""
    out = {}
    for k, v in sd.items():
        if ".pos_encoder." in k:
            if ".attention_blocks.0." in k:
                out[k.replace(".temporal_transformer", "").replace(".attention_blocks.0.pos_encoder", ".pos_embed")] = v
            continue
        out[(k.replace(".norms.0", ".norm1").replace(".norms.1", ".norm2").replace(".ff_norm", ".norm3")
             .replace(".attention_blocks.0", ".attn1").replace(".attention_blocks.1", ".attn2")
             .replace(".temporal_transformer", ""))] = v
    return out
