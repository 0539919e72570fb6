"""Random-weight SparseCtrl files in the released layout (`render.py --stand-ins`, the tests).

AnimateDiff v3's SparseCtrl (guoyww/AnimateDiff, animatediff/models/sparse_controlnet.py,
`SparseControlNetModel`), keys as its state dict names them and the released `v3_sd15_sparsectrl_rgb.ckpt` /
`v3_sd15_sparsectrl_scribble.ckpt` hold them (a flat dict, diffusers' block names):
- conv_in, time_embedding.linear_1/2: the SD1.5 UNet's;
- the condition encoder: RGB (configs/inference/sparsectrl/latent_condition.yaml,
  use_simplified_condition_embedding) one 3×3 conv `controlnet_cond_embedding` from 4 latent channels + the mask;
  scribble (image_condition.yaml) `controlnet_cond_embedding.conv_in`, `.blocks.0-5`, `.conv_out` from 3 image
  channels + the mask, widths 16, 32, 96, 256;
- down_blocks.0-3 (resnets, attentions on the first three, downsamplers on the first three) each with two
  motion modules of ONE temporal self-attention (attention_block_types ["Temporal_Self"]), which store their
  position table `pos_encoder.pe` [1, 32, C] (temporal_position_encoding_max_len 32);
- mid_block (resnets 0/1, attentions.0, no motion module), controlnet_down_blocks.0-11, controlnet_mid_block.
Checked against diffusers 0.31's SparseControlNetModel (which loads the released files strictly once its converter
has renamed the temporal layers): the same keys and shapes, 486 tensors (RGB) and 500 (scribble), 497 M parameters
(the 1.99 GB of the released fp32 files). Nothing here is a trained model.
"""

import torch

from .random_weights import TEXT_WIDTH, UNET_CHANNELS, motion_layer, position_table, random_tensor

KINDS = {"rgb": 4, "scribble": 3}  # condition channels, before the mask the official code concatenates
EMBEDDING_WIDTHS = (16, 32, 96, 256)  # conditioning_embedding_out_channels
PE_FRAMES = 32


def _resnet(s, key, cin, cout, temb):
    s[f"{key}.norm1.weight"], s[f"{key}.norm1.bias"] = (cin,), (cin,)
    s[f"{key}.conv1.weight"], s[f"{key}.conv1.bias"] = (cout, cin, 3, 3), (cout,)
    s[f"{key}.time_emb_proj.weight"], s[f"{key}.time_emb_proj.bias"] = (cout, temb), (cout,)
    s[f"{key}.norm2.weight"], s[f"{key}.norm2.bias"] = (cout,), (cout,)
    s[f"{key}.conv2.weight"], s[f"{key}.conv2.bias"] = (cout, cout, 3, 3), (cout,)
    if cin != cout:
        s[f"{key}.conv_shortcut.weight"], s[f"{key}.conv_shortcut.bias"] = (cout, cin, 1, 1), (cout,)


def _attention(s, key, c, context):
    """AnimateDiff's Transformer3DModel as SD1.5 configures it: proj_in/proj_out 1×1 convolutions."""
    s[f"{key}.norm.weight"], s[f"{key}.norm.bias"] = (c,), (c,)
    s[f"{key}.proj_in.weight"], s[f"{key}.proj_in.bias"] = (c, c, 1, 1), (c,)
    block = f"{key}.transformer_blocks.0"
    for attention, kv in (("attn1", c), ("attn2", context)):
        s[f"{block}.{attention}.to_q.weight"] = (c, c)
        s[f"{block}.{attention}.to_k.weight"] = (c, kv)
        s[f"{block}.{attention}.to_v.weight"] = (c, kv)
        s[f"{block}.{attention}.to_out.0.weight"], s[f"{block}.{attention}.to_out.0.bias"] = (c, c), (c,)
    s[f"{block}.ff.net.0.proj.weight"], s[f"{block}.ff.net.0.proj.bias"] = (8 * c, c), (8 * c,)
    s[f"{block}.ff.net.2.weight"], s[f"{block}.ff.net.2.bias"] = (c, 4 * c), (c,)
    for norm in ("norm1", "norm2", "norm3"):
        s[f"{block}.{norm}.weight"], s[f"{block}.{norm}.bias"] = (c,), (c,)
    s[f"{key}.proj_out.weight"], s[f"{key}.proj_out.bias"] = (c, c, 1, 1), (c,)


def _motion_module(s, key, c, pe_frames):
    """One VanillaTemporalModule with a single temporal self-attention."""
    t = f"{key}.temporal_transformer"
    s[f"{t}.norm.weight"], s[f"{t}.norm.bias"] = (c,), (c,)
    s[f"{t}.proj_in.weight"], s[f"{t}.proj_in.bias"] = (c, c), (c,)
    b = f"{t}.transformer_blocks.0"
    for proj in ("to_q", "to_k", "to_v"):
        s[f"{b}.attention_blocks.0.{proj}.weight"] = (c, c)
    s[f"{b}.attention_blocks.0.to_out.0.weight"], s[f"{b}.attention_blocks.0.to_out.0.bias"] = (c, c), (c,)
    if pe_frames:
        s[f"{b}.attention_blocks.0.pos_encoder.pe"] = (1, pe_frames, c)
    s[f"{b}.norms.0.weight"], s[f"{b}.norms.0.bias"] = (c,), (c,)
    s[f"{b}.ff.net.0.proj.weight"], s[f"{b}.ff.net.0.proj.bias"] = (8 * c, c), (8 * c,)
    s[f"{b}.ff.net.2.weight"], s[f"{b}.ff.net.2.bias"] = (c, 4 * c), (c,)
    s[f"{b}.ff_norm.weight"], s[f"{b}.ff_norm.bias"] = (c,), (c,)
    s[f"{t}.proj_out.weight"], s[f"{t}.proj_out.bias"] = (c, c), (c,)


def sparsectrl_shapes(kind, channels=UNET_CHANNELS, context=TEXT_WIDTH, pe_frames=PE_FRAMES):
    """{official key: shape} of a SparseCtrl of `kind` ("rgb" or "scribble") at UNet widths `channels`."""
    s, temb = {}, 4 * channels[0]
    s["conv_in.weight"], s["conv_in.bias"] = (channels[0], 4, 3, 3), (channels[0],)
    condition = KINDS[kind] + 1  # + the mask (concate_conditioning_mask)
    if kind == "rgb":
        s["controlnet_cond_embedding.weight"] = (channels[0], condition, 3, 3)
        s["controlnet_cond_embedding.bias"] = (channels[0],)
    else:
        e = EMBEDDING_WIDTHS
        s["controlnet_cond_embedding.conv_in.weight"], s["controlnet_cond_embedding.conv_in.bias"] = \
            (e[0], condition, 3, 3), (e[0],)
        for i in range(len(e) - 1):
            for j, (cin, cout) in enumerate(((e[i], e[i]), (e[i], e[i + 1]))):
                key = f"controlnet_cond_embedding.blocks.{2 * i + j}"
                s[key + ".weight"], s[key + ".bias"] = (cout, cin, 3, 3), (cout,)
        s["controlnet_cond_embedding.conv_out.weight"] = (channels[0], e[-1], 3, 3)
        s["controlnet_cond_embedding.conv_out.bias"] = (channels[0],)
    s["time_embedding.linear_1.weight"], s["time_embedding.linear_1.bias"] = (temb, channels[0]), (temb,)
    s["time_embedding.linear_2.weight"], s["time_embedding.linear_2.bias"] = (temb, temb), (temb,)
    zero_convs = [channels[0]]
    cin = channels[0]
    for level, cout in enumerate(channels):
        last = level == len(channels) - 1
        for j in range(2):
            _resnet(s, f"down_blocks.{level}.resnets.{j}", cin if j == 0 else cout, cout, temb)
            if not last:
                _attention(s, f"down_blocks.{level}.attentions.{j}", cout, context)
            _motion_module(s, f"down_blocks.{level}.motion_modules.{j}", cout, pe_frames)
            zero_convs.append(cout)
        if not last:
            key = f"down_blocks.{level}.downsamplers.0.conv"
            s[key + ".weight"], s[key + ".bias"] = (cout, cout, 3, 3), (cout,)
            zero_convs.append(cout)
        cin = cout
    for j in range(2):
        _resnet(s, f"mid_block.resnets.{j}", channels[-1], channels[-1], temb)
    _attention(s, "mid_block.attentions.0", channels[-1], context)
    for i, c in enumerate(zero_convs):
        s[f"controlnet_down_blocks.{i}.weight"], s[f"controlnet_down_blocks.{i}.bias"] = (c, c, 1, 1), (c,)
    s["controlnet_mid_block.weight"], s["controlnet_mid_block.bias"] = (channels[-1], channels[-1], 1, 1), (channels[-1],)
    return s


def sparsectrl_state_dict(kind, channels=UNET_CHANNELS, seed=0, dtype=torch.float16, context=TEXT_WIDTH):
    """A random SparseCtrl of `kind` in the released layout: the spatial weights scaled as the SD1.5 stand-in's
    (random_weights.random_tensor), the motion modules' as the motion-module stand-in's, the stored position
    tables the sinusoid the official code computes; zero convolutions random (training moved them from zero)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in sparsectrl_shapes(kind, channels, context).items():
        if ".motion_modules." in key:
            continue
        out[key] = random_tensor(key, shape, generator, torch.float32)
        if key.startswith("controlnet_") and key.endswith(".bias"):
            out[key] = 0.1 * torch.randn(shape, generator=generator)
    for level, c in enumerate(channels):
        for j in range(2):
            prefix = f"down_blocks.{level}.motion_modules.{j}."
            for name, value in motion_layer(c, generator).items():
                if ".attention_blocks.1." not in name and ".norms.1." not in name:  # one attention, one norm
                    out[prefix + name] = value
            out[prefix + "temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"] = \
                position_table(PE_FRAMES, c)
    return {k: v.to(dtype) for k, v in out.items()}
