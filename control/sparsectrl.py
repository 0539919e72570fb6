"""SparseCtrl (AnimateDiff v3): the file, recognised and built into a ControlNet of ComfyUI's own parts.

SparseCtrl (guoyww/AnimateDiff, animatediff/models/sparse_controlnet.py) is an SD1.5 ControlNet whose input
is a condition on a few frames plus a mask saying which, with a temporal layer after each down-block
resnet/attention pair, so the keyframes' influence spreads over the frames between them. Its forward:
    sample = conv_in(0)                                      set_noisy_sample_input_to_zero: the latent never enters
           + controlnet_cond_embedding(cat(condition, mask))  RGB: one 3×3 conv; scribble: ControlNet's hint encoder
    down blocks (resnet, attention, temporal layer)·2 per level, then the mid block (no temporal layer)
    residuals = controlnet_down_blocks / controlnet_mid_block (1×1 zero convs), × conditioning_scale
Here: the spatial part is ComfyUI's `comfy.cldm.cldm.ControlNet` (the hint encoder, resnets, attentions and
zero convs of every ControlNet ComfyUI runs), and the temporal layers are the pack's motion layers
(motion/temporal_layer.py, one self-attention each, the fixed sinusoid over 32 frames), placed in the input
blocks exactly where the motion module's go in the UNet (motion/injection.py).

The released files (`v3_sd15_sparsectrl_rgb.ckpt`, `v3_sd15_sparsectrl_scribble.ckpt`, and the same weights
saved as .safetensors) hold the official state dict with diffusers' block names; `key_map` names, for every
parameter of the built network, the official key(s) it is made from (to_q/to_k/to_v are fused, as the
motion module's are). The stored `pos_encoder.pe` tables are dropped, as the official loader drops them
(scripts/animate.py): the layers compute the same sinusoid.
"""
import os
import pickle
from dataclasses import dataclass

import comfy.cldm.cldm
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.utils
import torch
from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential
from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
from safetensors import SafetensorError

from ..motion.formats import is_image_checkpoint, is_lora
from ..motion.injection import MOTION_CHILD, block_with_motion_layer, unet_block_path
from ..motion.temporal_layer import MotionLayer
from ..weights.mapped_pages import release

MAX_FRAMES = 32  # temporal_position_encoding_max_len of both configs (configs/inference/sparsectrl/*.yaml)
RGB, SCRIBBLE = "RGB", "scribble"
QKV = ("to_q", "to_k", "to_v")
PICK = ("Pick v3_sd15_sparsectrl_rgb.ckpt (keyframe pictures) or v3_sd15_sparsectrl_scribble.ckpt (keyframe "
        "sketches) from guoyww/animatediff, in models/controlnet.")


class SparseCtrlError(ValueError):
    """Not a SparseCtrl file this pack can use; the message says what the file is and what to pick."""


class SparseControlNet(comfy.cldm.cldm.ControlNet):
    """ComfyUI's ControlNet with SparseCtrl's input: the noisy latent zeroed, the condition and mask as the hint."""

    def forward(self, x, hint, timesteps, context):
        """[13 residuals]: one per input block (zero convs), then the middle block's. x: the noisy latent (only its
        shape is used); hint: [batch, condition + mask channels, ...] at latent size (RGB) or 8× it (scribble)."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(hint.dtype))
        h = torch.zeros_like(x, dtype=hint.dtype)  # set_noisy_sample_input_to_zero (both official configs)
        outs = []
        for index, (module, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = module(h, emb, context)
            if index == 0:
                h = h + self.input_hint_block(hint, emb, context)  # conv_in(0) + controlnet_cond_embedding
            outs.append(zero_conv(h, emb, context))
        h = self.middle_block(h, emb, context)
        outs.append(self.middle_block_out(h, emb, context))
        return outs


@dataclass(eq=False)
class SparseCtrl:
    """A loaded SparseCtrl (the SPARSECTRL that flows between nodes): the network and the patcher ComfyUI loads,
    moves and offloads it with, like a ControlNet's."""
    name: str
    kind: str  # RGB: keyframes are pictures, VAE-encoded; scribble: sketches, as images
    network: SparseControlNet
    patcher: object
    manual_cast_dtype: torch.dtype = None
    max_frames: int = MAX_FRAMES

    @property
    def compute_dtype(self):
        return self.manual_cast_dtype or self.network.dtype

    def __repr__(self):
        return f"SparseCtrl({self.name!r}, {self.kind})"


# --- what the file is --------------------------------------------------------------------------------------

def _read(path, name):
    if os.path.getsize(path) == 0:
        raise SparseCtrlError(f"'{name}' is empty (0 bytes): the download did not finish. Download it again.")
    try:
        state_dict = comfy.utils.load_torch_file(path, safe_load=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            raise SparseCtrlError(f"'{name}' was refused: it is a pickle that asks to run code or build objects other "
                                  "than tensors when loaded, and only weights are loaded here. Use a .safetensors "
                                  "version of it.") from error
        raise SparseCtrlError(f"'{name}' is corrupt or truncated ({error}). Download it again.") from error
    except (RuntimeError, EOFError, OSError, ValueError, SafetensorError) as error:
        raise SparseCtrlError(f"'{name}' is corrupt or truncated ({str(error).splitlines()[0]}). Download it "
                              "again.") from error
    if isinstance(state_dict, dict) and isinstance(state_dict.get("controlnet"), dict):
        state_dict = state_dict["controlnet"]  # a training checkpoint: scripts/animate.py reads it the same way
    if not isinstance(state_dict, dict):
        raise SparseCtrlError(f"'{name}' holds no state dict of tensors. {PICK}")
    # the official loader drops `animatediff_config` (a training setting, not a weight) the same way
    return {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}


def _is_motion(key):
    return ".motion_modules." in key or key.startswith("motion_modules.")


def _refuse_other_files(keys, name):
    keys = list(keys)
    if not keys:
        raise SparseCtrlError(f"'{name}' holds no tensors: it is damaged. Download it again.")
    if is_image_checkpoint(keys):
        raise SparseCtrlError(f"'{name}' is an image model checkpoint, not a SparseCtrl: load it with Load "
                              f"Checkpoint. {PICK}")
    if "lora_controlnet" in keys or is_lora(keys):
        raise SparseCtrlError(f"'{name}' is a LoRA (or a Control-LoRA), not a SparseCtrl. {PICK}")
    motion = any(_is_motion(k) for k in keys)
    controlnet = any(k.startswith(("controlnet_", "input_hint_block.", "zero_convs.", "control_model."))
                     for k in keys)
    if motion and not controlnet:
        raise SparseCtrlError(f"'{name}' is a motion module (motion_modules layers, no ControlNet): put it in "
                              f"models/animatediff_models and load it with Load Motion Module. {PICK}")
    if controlnet and not motion:
        raise SparseCtrlError(f"'{name}' is a plain ControlNet (no temporal layers): load it with ComfyUI's Load "
                              f"ControlNet Model and use Apply ControlNet. {PICK}")
    if not controlnet:
        raise SparseCtrlError(f"'{name}' is not a SparseCtrl: it has no ControlNet weights (its keys begin "
                              f"{', '.join(sorted(keys)[:3])}). {PICK}")


_DIFFUSERS_MOTION = {"attn1": "attention_blocks.0", "norm1": "norms.0", "norm3": "ff_norm", "pos_embed": "pos_encoder"}


def _original_motion_names(weights):
    """diffusers' SparseControlNetModel names its temporal layers as its converter writes them
    (scripts/convert_animatediff_sparsectrl_to_diffusers.py): back to the original naming."""
    out = {}
    for key, value in weights.items():
        if _is_motion(key) and ".temporal_transformer." not in key:
            head, _, rest = key.partition(".motion_modules.")
            position, _, rest = rest.partition(".")
            rest = ".".join(_DIFFUSERS_MOTION.get(part, part) for part in rest.split("."))
            key = f"{head}.motion_modules.{position}.temporal_transformer.{rest}"
        out[key] = value
    return out


def _shape(weights, key, name):
    if key not in weights:
        raise SparseCtrlError(f"'{name}' is incomplete: it lacks {key}. Download it again.")
    return weights[key].shape


def network_config(weights, name):
    """cldm.ControlNet's config for the file: widths and text width read from its shapes; SD1.5's layout."""
    kind = RGB if "controlnet_cond_embedding.weight" in weights else SCRIBBLE
    embedding = "controlnet_cond_embedding.weight" if kind == RGB else "controlnet_cond_embedding.conv_in.weight"
    hint_channels = _shape(weights, embedding, name)[1]
    base = _shape(weights, "conv_in.weight", name)[0]
    widths = []
    while f"down_blocks.{len(widths)}.resnets.0.conv1.weight" in weights:
        widths.append(weights[f"down_blocks.{len(widths)}.resnets.0.conv1.weight"].shape[0])
    attention_levels = [i for i in range(len(widths)) if f"down_blocks.{i}.attentions.0.norm.weight" in weights]
    context = _shape(weights, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", name)[1] \
        if attention_levels else None
    if len(widths) != 4 or attention_levels != [0, 1, 2] or context != 768:
        raise SparseCtrlError(f"'{name}' is not an SD1.5 SparseCtrl ({len(widths)} levels, attention on levels "
                              f"{attention_levels}, text width {context}): SparseCtrl exists for SD1.5 only. {PICK}")
    if kind == SCRIBBLE and hint_channels != 4 or kind == RGB and hint_channels != 5:
        raise SparseCtrlError(f"'{name}' takes {hint_channels} condition channels; SparseCtrl takes 4 (scribble: RGB "
                              f"and the mask) or 5 (RGB: 4 latent channels and the mask). {PICK}")
    return kind, {
        "image_size": 32, "in_channels": 4, "model_channels": base, "hint_channels": hint_channels,
        "num_res_blocks": [2] * 4, "channel_mult": [w // base for w in widths],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "transformer_depth_output": [1] * 9 + [0] * 3,
        "transformer_depth_middle": 1, "context_dim": context, "num_heads": 8, "num_head_channels": -1,
        "use_spatial_transformer": True, "use_linear_in_transformer": False, "legacy": False,
    }


# --- the network and the key map ---------------------------------------------------------------------------

def motion_positions(config):
    """{position: channels} of the temporal layers: two per down level (motion_module_resolutions [1, 2, 4, 8])."""
    base = config["model_channels"]
    return {f"down_blocks.{i}.motion_modules.{j}": base * m for i, m in enumerate(config["channel_mult"])
            for j in range(2)}


def build_network(kind, config, dtype, operations, device=None):
    """The SparseCtrl network, its temporal layers in place (on `device`: "meta" to build without memory)."""
    with torch.device(device or "cpu"):
        network = SparseControlNet(**config, dtype=dtype, operations=operations)
        if kind == RGB:  # use_simplified_condition_embedding: one 3×3 conv from the latent and the mask
            network.input_hint_block = TimestepEmbedSequential(operations.conv_nd(
                2, config["hint_channels"], config["model_channels"], 3, padding=1, dtype=dtype))
        for position, channels in motion_positions(config).items():
            index = int(unet_block_path(position).rsplit(".", 1)[1])
            layer = MotionLayer(channels, MAX_FRAMES, stored_pe=False, attentions=1)
            network.input_blocks[index] = block_with_motion_layer(network.input_blocks[index], layer)
    return network


def _hint_names(kind):
    """input_hint_block index → the official condition encoder's name."""
    if kind == RGB:
        return {0: "controlnet_cond_embedding"}
    names = {0: "controlnet_cond_embedding.conv_in", 14: "controlnet_cond_embedding.conv_out"}
    names.update({2 * (k + 1): f"controlnet_cond_embedding.blocks.{k}" for k in range(6)})
    return names


def key_map(network, kind, config):
    """{network parameter: [the official keys it is made from]} (three for a fused to_qkv, else one)."""
    unet = {}
    for official, ours in comfy.utils.unet_to_diffusers(config).items():
        unet.setdefault(ours, official)
    blocks = {unet_block_path(p).rsplit(".", 1)[1]: p for p in motion_positions(config)}
    hint = _hint_names(kind)
    out = {}
    for key in network.state_dict():
        parts = key.split(".")
        if parts[0] == "input_blocks" and parts[2] == MOTION_CHILD:
            official = f"{blocks[parts[1]]}.{'.'.join(parts[3:])}"
            out[key] = ([official.replace("to_qkv.", f"{proj}.") for proj in QKV] if ".to_qkv." in official
                        else [official])
        elif parts[0] == "input_hint_block":
            out[key] = [f"{hint[int(parts[1])]}.{parts[-1]}"]
        elif parts[0] == "zero_convs":
            out[key] = [f"controlnet_down_blocks.{parts[1]}.{parts[-1]}"]
        elif parts[0] == "middle_block_out":
            out[key] = [f"controlnet_mid_block.{parts[-1]}"]
        else:
            out[key] = [unet[key]]
    return out


def _stored_position_table(key):
    return key.endswith(".pos_encoder.pe")


def _network_tensors(weights, names, expected, name, dtype, motion_dtype):
    """The network's state dict from the official tensors; anything missing, left over or misshapen refused.

    `weights` is emptied as its tensors are taken: where a tensor is converted (fp16 file → fp32 compute, or the
    released fp32 files → fp16 on a GPU) the file's copy is let go at once (and its pages given back where the file
    is memory-mapped), so loading peaks near one copy of SparseCtrl, not two."""
    wanted = {official for group in names.values() for official in group}
    missing = sorted(wanted - set(weights))
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise SparseCtrlError(f"'{name}' is incomplete: it lacks {', '.join(missing[:3])}{more}. It is truncated or "
                              "not a SparseCtrl: download it again.")
    extra = sorted(k for k in set(weights) - wanted if not _stored_position_table(k))
    if extra:
        raise SparseCtrlError(f"'{name}' has weights no SparseCtrl has ({', '.join(extra[:3])}"
                              f"{f' and {len(extra) - 3} more' if len(extra) > 3 else ''}). {PICK}")
    tensors = {}
    for key, group in names.items():
        shape = list(expected[key].shape)
        shape[0] //= len(group)  # a fused to_qkv holds its three parts one after another
        for official in group:
            if list(weights[official].shape) != shape:
                raise SparseCtrlError(f"'{name}': {official} has shape {list(weights[official].shape)}, where "
                                      f"SparseCtrl's is {shape}. The file is damaged or from another model: download "
                                      "it again.")
        target = motion_dtype if f".{MOTION_CHILD}." in key else dtype
        sources = [weights.pop(official) for official in group]
        parts = [source.to(target) for source in sources]
        tensors[key] = torch.cat(parts) if len(parts) > 1 else parts[0]
        release([source for source in sources if not any(source is t for t in parts + [tensors[key]])])
    return tensors


def load_sparsectrl(path):
    """Read, recognise and build the SparseCtrl at `path` (its tensors assigned, not copied, where dtypes match)."""
    name = os.path.basename(path)
    weights = _read(path, name)
    _refuse_other_files(weights.keys(), name)
    weights = _original_motion_names(weights)
    kind, config = network_config(weights, name)
    load_device = comfy.model_management.get_torch_device()
    dtype = comfy.model_management.unet_dtype()
    manual_cast_dtype = comfy.model_management.unet_manual_cast(dtype, load_device)
    operations = comfy.ops.manual_cast if manual_cast_dtype is not None else comfy.ops.disable_weight_init
    network = build_network(kind, config, dtype, operations, device="meta")
    expected = network.state_dict()
    tensors = _network_tensors(weights, key_map(network, kind, config), expected, name, dtype,
                               manual_cast_dtype or dtype)  # the temporal layers compute in their weights' dtype
    network.load_state_dict(tensors, strict=True, assign=True)
    network.eval().requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(network, load_device=load_device,
                                               offload_device=comfy.model_management.unet_offload_device())
    return SparseCtrl(name, kind, network, patcher, manual_cast_dtype)
