"""Random-weight Stable Video Diffusion files in the real layouts (`render.py --stand-ins`, the tests).

- AnimateLCM-SVD-xt: a diffusers UNetSpatioTemporalConditionModel state dict, its keys and shapes built
  from the model's config as diffusers names them (checked against diffusers 0.31's module for the
  published SVD-xt config: 1428 tensors, 1,524,623,082 parameters, the 6.1 GB of the released fp32 file).
- svd_xt.safetensors: an Image Only checkpoint: the UNet in Stability's (ComfyUI's) layout, the ViT-H/14
  CLIP vision encoder under `conditioner.embedders.0.open_clip.model.visual.` and the temporal VAE.
Full size would be 6 GB per UNet. The stand-ins use NARROW_SVD (320 channels at every level): ComfyUI
still detects it as SVD_img2vid (it matches on the first level's width, the attention layout and the
context widths, not on the deeper widths), at 212 M parameters. CLIP vision and the VAE have fixed
sizes in ComfyUI (its configs are not read from the file), so they are full size.
"""

import torch

from .random_weights import random_tensor, vae_shapes

SVD_XT = {  # stabilityai/stable-video-diffusion-img2vid-xt unet/config.json (diffusers' defaults)
    "in_channels": 8, "out_channels": 4, "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2,
    "cross_attention_dim": 1024, "num_attention_heads": (5, 10, 20, 20), "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
}
NARROW_SVD = {**SVD_XT, "block_out_channels": (320, 320, 320, 320), "num_attention_heads": (5, 5, 5, 5)}


def _norm(s, key, c):
    s[key + ".weight"], s[key + ".bias"] = (c,), (c,)


def _linear(s, key, c_out, c_in, bias=True):
    s[key + ".weight"] = (c_out, c_in)
    if bias:
        s[key + ".bias"] = (c_out,)


def _conv(s, key, c_out, c_in, kernel):
    s[key + ".weight"], s[key + ".bias"] = (c_out, c_in, *kernel), (c_out,)


def _spatio_temporal_resnet(s, p, c_in, c_out, emb):
    """SpatioTemporalResBlock: a 2-D resnet, a temporal resnet (3×1×1 convs), and their learned mix."""
    r = p + ".spatial_res_block"
    _norm(s, r + ".norm1", c_in)
    _conv(s, r + ".conv1", c_out, c_in, (3, 3))
    _linear(s, r + ".time_emb_proj", c_out, emb)
    _norm(s, r + ".norm2", c_out)
    _conv(s, r + ".conv2", c_out, c_out, (3, 3))
    if c_in != c_out:
        _conv(s, r + ".conv_shortcut", c_out, c_in, (1, 1))
    t = p + ".temporal_res_block"
    _norm(s, t + ".norm1", c_out)
    _conv(s, t + ".conv1", c_out, c_out, (3, 1, 1))
    _linear(s, t + ".time_emb_proj", c_out, emb)
    _norm(s, t + ".norm2", c_out)
    _conv(s, t + ".conv2", c_out, c_out, (3, 1, 1))
    s[p + ".time_mixer.mix_factor"] = (1,)


def _attention(s, p, c, context):
    for name, kv in (("attn1", c), ("attn2", context)):
        _linear(s, f"{p}.{name}.to_q", c, c, bias=False)
        _linear(s, f"{p}.{name}.to_k", c, kv, bias=False)
        _linear(s, f"{p}.{name}.to_v", c, kv, bias=False)
        _linear(s, f"{p}.{name}.to_out.0", c, c)


def _feed_forward(s, p, c):
    _linear(s, p + ".net.0.proj", 8 * c, c)  # GEGLU
    _linear(s, p + ".net.2", c, 4 * c)


def _spatio_temporal_transformer(s, p, c, context):
    """TransformerSpatioTemporalModel: a spatial block, a temporal block (with ff_in), frame embedding, mix."""
    _norm(s, p + ".norm", c)
    _linear(s, p + ".proj_in", c, c)
    b = p + ".transformer_blocks.0"
    for norm in ("norm1", "norm2", "norm3"):
        _norm(s, f"{b}.{norm}", c)
    _attention(s, b, c, context)
    _feed_forward(s, b + ".ff", c)
    t = p + ".temporal_transformer_blocks.0"
    _norm(s, t + ".norm_in", c)
    _feed_forward(s, t + ".ff_in", c)
    for norm in ("norm1", "norm2", "norm3"):
        _norm(s, f"{t}.{norm}", c)
    _attention(s, t, c, context)
    _feed_forward(s, t + ".ff", c)
    _linear(s, p + ".time_pos_embed.linear_1", 4 * c, c)
    _linear(s, p + ".time_pos_embed.linear_2", c, 4 * c)
    s[p + ".time_mixer.mix_factor"] = (1,)
    _linear(s, p + ".proj_out", c, c)


def svd_unet_diffusers_shapes(config=SVD_XT):
    """{key: shape} of a diffusers UNetSpatioTemporalConditionModel built from `config`."""
    ch, layers, context = config["block_out_channels"], config["layers_per_block"], config["cross_attention_dim"]
    emb = 4 * ch[0]
    s = {}
    _conv(s, "conv_in", ch[0], config["in_channels"], (3, 3))
    _linear(s, "time_embedding.linear_1", emb, ch[0])
    _linear(s, "time_embedding.linear_2", emb, emb)
    _linear(s, "add_embedding.linear_1", emb, config["projection_class_embeddings_input_dim"])
    _linear(s, "add_embedding.linear_2", emb, emb)
    c_in = ch[0]
    for b, c in enumerate(ch):
        for i in range(layers):
            _spatio_temporal_resnet(s, f"down_blocks.{b}.resnets.{i}", c_in if i == 0 else c, c, emb)
            if config["down_block_types"][b].startswith("CrossAttn"):
                _spatio_temporal_transformer(s, f"down_blocks.{b}.attentions.{i}", c, context)
        if b < len(ch) - 1:
            _conv(s, f"down_blocks.{b}.downsamplers.0.conv", c, c, (3, 3))
        c_in = c
    _spatio_temporal_resnet(s, "mid_block.resnets.0", ch[-1], ch[-1], emb)
    _spatio_temporal_transformer(s, "mid_block.attentions.0", ch[-1], context)
    _spatio_temporal_resnet(s, "mid_block.resnets.1", ch[-1], ch[-1], emb)
    reversed_ch = list(reversed(ch))
    c_prev = ch[-1]
    for b, c in enumerate(reversed_ch):
        for i in range(layers + 1):  # each layer concatenates a skip: the last one that of the block's input
            skip = c if i < layers else reversed_ch[min(b + 1, len(ch) - 1)]
            _spatio_temporal_resnet(s, f"up_blocks.{b}.resnets.{i}", (c_prev if i == 0 else c) + skip, c, emb)
            if config["up_block_types"][b].startswith("CrossAttn"):
                _spatio_temporal_transformer(s, f"up_blocks.{b}.attentions.{i}", c, context)
        if b < len(ch) - 1:
            _conv(s, f"up_blocks.{b}.upsamplers.0.conv", c, c, (3, 3))
        c_prev = c
    _norm(s, "conv_norm_out", ch[0])
    _conv(s, "conv_out", config["out_channels"], ch[0], (3, 3))
    return s


CLIP_VISION_PREFIX = "conditioner.embedders.0.open_clip.model.visual."
VIT_H = {"width": 1280, "layers": 32, "patch": 14, "positions": 257, "projection": 1024}


def clip_vision_shapes(prefix=CLIP_VISION_PREFIX, vit=VIT_H):
    """OpenCLIP ViT-H/14's image tower as SVD checkpoints store it (ComfyUI reads it as clip_vision_config_h)."""
    w = vit["width"]
    s = {"conv1.weight": (w, 3, vit["patch"], vit["patch"]), "class_embedding": (w,),
         "positional_embedding": (vit["positions"], w), "proj": (w, vit["projection"])}
    _norm(s, "ln_pre", w)
    _norm(s, "ln_post", w)
    for i in range(vit["layers"]):
        p = f"transformer.resblocks.{i}"
        _norm(s, p + ".ln_1", w)
        _norm(s, p + ".ln_2", w)
        s[p + ".attn.in_proj_weight"], s[p + ".attn.in_proj_bias"] = (3 * w, w), (3 * w,)
        _linear(s, p + ".attn.out_proj", w, w)
        _linear(s, p + ".mlp.c_fc", 4 * w, w)
        _linear(s, p + ".mlp.c_proj", w, 4 * w)
    return {prefix + k: v for k, v in s.items()}


def temporal_vae_shapes(prefix="first_stage_model."):
    """SVD's VAE: SD's encoder, and a decoder whose every resnet has a temporal twin (3×1×1 convs) mixed in."""
    s = {k: v for k, v in vae_shapes("").items() if "quant_conv" not in k}  # no quant convs in this autoencoder
    resnets = ["decoder.mid.block_1", "decoder.mid.block_2"] + [f"decoder.up.{i}.block.{j}" for i in range(4)
                                                                for j in range(3)]
    for p in resnets:
        c = s[p + ".conv2.weight"][0]
        s[p + ".mix_factor"] = (1,)
        _norm(s, p + ".time_stack.in_layers.0", c)
        _conv(s, p + ".time_stack.in_layers.2", c, c, (3, 1, 1))
        _norm(s, p + ".time_stack.out_layers.0", c)
        _conv(s, p + ".time_stack.out_layers.3", c, c, (3, 1, 1))
    _conv(s, "decoder.conv_out.time_mix_conv", 3, 3, (3, 1, 1))
    return {prefix + k: v for k, v in s.items()}


def random_weights(shapes, seed=0, dtype=torch.float16):
    """Norm scales 1, biases 0, embeddings N(0, 0.02²), everything else N(0, 1/fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if ".ln_" in key and not key.endswith(".bias"):  # CLIP's layer norms (random_tensor knows the UNet's)
            out[key] = torch.ones(shape, dtype=dtype)
        elif key.endswith(("class_embedding", "positional_embedding")):
            out[key] = (torch.randn(shape, generator=generator) * 0.02).to(dtype)
        else:
            out[key] = random_tensor(key, shape, generator, dtype)
    return out


def animatelcm_svd_unet(seed=0, dtype=torch.float16, config=NARROW_SVD):
    """An AnimateLCM-SVD-xt-shaped UNet in the released (diffusers) layout; NARROW_SVD: 425 MB in fp16."""
    return random_weights(svd_unet_diffusers_shapes(config), seed, dtype)


def svd_image_only_checkpoint(seed=1, dtype=torch.float16, config=NARROW_SVD):
    """An svd_xt.safetensors-shaped checkpoint (UNet, CLIP vision, temporal VAE): 1.9 GB in fp16 with NARROW_SVD."""
    from ..svd.keys import comfy_names
    unet = svd_unet_diffusers_shapes(config)
    names = comfy_names(unet)
    shapes = {"model.diffusion_model." + names[k]: v for k, v in unet.items()}
    shapes.update(clip_vision_shapes())
    shapes.update(temporal_vae_shapes())
    return random_weights(shapes, seed, dtype)
