"""Diffusers → ComfyUI names for a Stable Video Diffusion UNet (UNetSpatioTemporalConditionModel).

Every key is a pure rename (no reshape, no split): the reverse of diffusers'
scripts/convert_svd_to_diffusers.py, read against ComfyUI's SVD UNet (comfy/ldm/modules/
diffusionmodules/openaimodel.py with use_temporal_resblock, attention.py SpatialVideoTransformer).
ComfyUI numbers the UNet's blocks flat: down block b, layer l is input_blocks[1 + b·(L+1) + l] with L
layers per block (the +1 is the downsampler's own slot); up block b, layer l is output_blocks[b·(L+1) + l].
"""
import re

TOP_LEVEL = {
    "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
}
# diffusers ResnetBlock2D / TemporalResnetBlock layer → ComfyUI ResBlock layer
RESNET_LAYERS = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
                 "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def is_diffusers_svd_unet(keys):
    """Whether `keys` look like a diffusers UNetSpatioTemporalConditionModel (its spatio-temporal resnets)."""
    return any(".spatial_res_block." in k for k in keys) and any(".temporal_res_block." in k for k in keys)


def comfy_names(keys):
    """{diffusers key: ComfyUI key} for every key of a diffusers SVD UNet; a key no rule covers raises KeyError."""
    keys = list(keys)
    layers = 1 + max(int(m.group(4)) for m in map(_BLOCK.match, keys)
                     if m and m.group(1) == "down_blocks" and m.group(3) == "resnets")
    up_with_attention = {int(m.group(2)) for m in map(_BLOCK.match, keys)
                         if m and m.group(1) == "up_blocks" and m.group(3) == "attentions"}
    return {key: _comfy_name(key, layers, up_with_attention) for key in keys}


def _comfy_name(key, layers, up_with_attention):
    for old, new in TOP_LEVEL.items():
        if key.startswith(old):
            return new + key[len(old):]
    block = _BLOCK.match(key)
    if block:
        side, b, kind, i, rest = block.group(1), int(block.group(2)), block.group(3), int(block.group(4)), block.group(5)
        if side == "down_blocks":
            if kind == "downsamplers":  # its own slot after the block's layers; a conv called `op` in ComfyUI
                return f"input_blocks.{(b + 1) * (layers + 1)}.0.op.{rest.removeprefix('conv.')}"
            return f"input_blocks.{1 + b * (layers + 1) + i}.{_layer(kind, rest)}"
        if kind == "upsamplers":  # appended to the block's last layer, after its attention if it has one
            slot = 2 if b in up_with_attention else 1
            return f"output_blocks.{b * (layers + 1) + layers}.{slot}.{rest}"
        return f"output_blocks.{b * (layers + 1) + i}.{_layer(kind, rest)}"
    mid = _MID.match(key)
    if mid:
        kind, i, rest = mid.group(1), int(mid.group(2)), mid.group(3)
        position = 1 if kind == "attentions" else 2 * i  # resnet, attention, resnet
        return f"middle_block.{position}.{_layer(kind, rest).split('.', 1)[1]}"  # no layer index in the middle
    raise KeyError(f"no ComfyUI name for the diffusers SVD key '{key}'")


def _layer(kind, rest):
    """`0.<resnet path>` or `1.<transformer path>` inside one ComfyUI block."""
    if kind == "resnets":
        return "0." + _resnet(rest)
    rest = rest.replace("temporal_transformer_blocks.", "time_stack.", 1)
    rest = rest.replace("time_pos_embed.linear_1.", "time_pos_embed.0.").replace("time_pos_embed.linear_2.",
                                                                                 "time_pos_embed.2.")
    return "1." + rest


def _resnet(rest):
    """SpatioTemporalResBlock: the 2-D resnet is ComfyUI's VideoResBlock itself, the temporal one its time_stack."""
    if rest.startswith("time_mixer."):
        return rest
    part, layer, param = rest.split(".", 2)
    if part not in ("spatial_res_block", "temporal_res_block") or layer not in RESNET_LAYERS:
        raise KeyError(f"no ComfyUI name for the diffusers SVD resnet key '{rest}'")
    renamed = f"{RESNET_LAYERS[layer]}.{param}"
    return renamed if part == "spatial_res_block" else "time_stack." + renamed


def to_comfy(state_dict):
    """The same tensors under ComfyUI's names (a new dict; no tensor is copied)."""
    names = comfy_names(state_dict)
    return {names[k]: v for k, v in state_dict.items()}
