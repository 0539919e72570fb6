"""AnimateDiff's temporal transformer: the layer a motion module adds after each UNet block.

Per layer (AnimateDiff / AnimateLCM `TemporalTransformer3DModel`, one transformer block):
    h = proj_in(GroupNorm(x))                        GroupNorm per frame, then one token per pixel
    for each temporal self-attention (two; one in   attention runs across frames, for every pixel
    SparseCtrl's layers):
        h = h + Attention(LayerNorm(h) + pe[:frames])
    h = h + GEGLU_FeedForward(LayerNorm(h))
    out = x + strength · proj_out(h)                 proj_out is zero-initialised in training

The sublayers are ComfyUI's own `comfy.ops` layers, so ComfyUI's low-VRAM loader can leave any of
them in RAM and cast them per call, as it does for the UNet's layers. Each attention computes
q, k and v in one matrix product (`to_qkv`, built from the file's to_q/to_k/to_v: see
motion_module.py), and reads them as strided views, so no layout copy sits between the product
and torch's fused attention (measured on a 2-core AVX2 CPU: one product and SDPA over strided views
take half the time of three products and two layout copies at 64 pixels, as fast as or faster than
explicit bmm + softmax at every SD1.5 shape).
"""

import comfy.ops
import torch
import torch.nn.functional as F
from torch import nn

from .frame_positions import position_encoding, sinusoidal_position_encoding
from .video_batch import videos_in_batch

HEADS = 8
ops = comfy.ops.disable_weight_init  # no random init: every weight is assigned from the file

# Feed-forward intermediate per chunk on CPU, in elements (16 MB in fp32). Unchunked, a 256x256 video's
# level-0 layers allocate over 300 MB per product output: fresh pages from the OS on every call (2.3 M
# page faults per UNet call) and one pass through RAM per op. Chunked, the buffers are reused from the heap
# and stay in cache: 6% faster at 256x256 on a 2-core AVX2 CPU, equal at 64x64, and the layers' working
# memory no longer grows with the frame size. GPUs gain nothing from smaller products, and a low-VRAM load
# would cast the weights once per chunk there, so they run whole.
CPU_CHUNK_ELEMENTS = 4 * 2**20


# From this many pixels per frame, proj_in and proj_out run as products over each frame's transposed plane
# on CPU instead of after a transposing copy (below it, one product per frame costs more than the copy).
TRANSPOSING_MIN_PIXELS = 64


def _own_weights(linear):
    """(weight, bias) of a comfy.ops Linear that computes with its own tensors; None when ComfyUI casts or
    patches them per call (low-VRAM offload, weight functions): then only its own forward is right."""
    if getattr(linear, "comfy_cast_weights", False) or getattr(linear, "weight_function", None) \
            or getattr(linear, "bias_function", None):
        return None
    return linear.weight, linear.bias


def _pixels_per_chunk(tokens):
    pixels, frames, channels = tokens.shape
    if tokens.device.type != "cpu":
        return pixels
    return max(1, CPU_CHUNK_ELEMENTS // (8 * channels * frames))  # 8 × channels: GEGLU's doubled 4x width


class PositionEncoder(nn.Module):
    """The frame encoding added before each attention, covering `max_frames` frames: the file's own
    (`pe`, AnimateDiff v1/v2/v3), or, for files that store none (AnimateLCM), the fixed sinusoid."""

    def __init__(self, channels, max_frames, stored=False):
        super().__init__()
        self.channels, self.max_frames = channels, max_frames
        if stored:
            self.register_buffer("pe", torch.empty(1, max_frames, channels))
        else:
            self.pe = None
        self._fixed = None  # the sinusoid, made once per device and dtype it is asked for

    def table(self, like):
        """[1, max_frames, C] on `like`'s device and dtype."""
        if self.pe is not None:
            return self.pe.to(device=like.device, dtype=like.dtype)
        if self._fixed is None or self._fixed.device != like.device or self._fixed.dtype != like.dtype:
            self._fixed = sinusoidal_position_encoding(self.max_frames, self.channels, like.device, like.dtype)
        return self._fixed

    def encoding(self, frames, like):
        return position_encoding(self.table(like), frames)  # past the table only when the MODEL asks


class TemporalAttention(nn.Module):
    def __init__(self, channels, max_frames, stored_pe=False):
        super().__init__()
        self.heads = HEADS
        self.to_qkv = ops.Linear(channels, 3 * channels, bias=False)
        self.to_out = nn.ModuleList([ops.Linear(channels, channels)])
        self.pos_encoder = PositionEncoder(channels, max_frames, stored_pe)

    def forward(self, tokens, pe_scale=1.0):
        """tokens: [pixels, frames, channels]."""
        pixels, frames, channels = tokens.shape
        pe = self.pos_encoder.encoding(frames, tokens)
        tokens = tokens + pe if pe_scale == 1.0 else tokens + pe_scale * pe
        # [pixels, frames, 3·C] read as three [pixels, heads, frames, C/heads] views: no copy
        q, k, v = self.to_qkv(tokens).view(pixels, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(pixels, frames, channels))


class GEGLUFeedForward(nn.Module):
    """diffusers' FeedForward(activation_fn="geglu"): net.0.proj doubles the width for the gate."""

    def __init__(self, channels, mult=4):
        super().__init__()
        inner = channels * mult
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), ops.Linear(inner, channels)])
        self.net[0].proj = ops.Linear(channels, inner * 2)

    def forward(self, x):
        hidden, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](hidden * F.gelu(gate))


class TemporalTransformerBlock(nn.Module):
    def __init__(self, channels, max_frames, stored_pe=False, attentions=2):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(channels, max_frames, stored_pe)
                                               for _ in range(attentions)])
        self.norms = nn.ModuleList([ops.LayerNorm(channels) for _ in range(attentions)])
        self.ff = GEGLUFeedForward(channels)
        self.ff_norm = ops.LayerNorm(channels)

    def forward(self, tokens, pe_scale=1.0):
        # residuals added into each sublayer's fresh output: no new tensor per add (autograd-safe: an add's
        # backward needs no values)
        for attention, norm in zip(self.attention_blocks, self.norms):
            tokens = attention(norm(tokens), pe_scale).add_(tokens)
        return self.ff(self.ff_norm(tokens)).add_(tokens)


class TemporalTransformer(nn.Module):
    def __init__(self, channels, max_frames, stored_pe=False, attentions=2):
        super().__init__()
        self.norm = ops.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = ops.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, max_frames, stored_pe, attentions)])
        self.proj_out = ops.Linear(channels, channels)

    def forward(self, x, videos, strength=1.0, pe_scale=1.0):
        """x: [videos·frames, C, H, W], the frames of each video consecutive in the batch."""
        frames_total, channels, height, width = x.shape
        frames = frames_total // videos
        weights = _own_weights(self.proj_in), _own_weights(self.proj_out)
        if (x.device.type == "cpu" and height * width >= TRANSPOSING_MIN_PIXELS and None not in weights
                and not torch.is_grad_enabled()):  # it writes into its own buffers (out=), which autograd refuses
            delta = self._per_frame_layout(x, videos, *weights, pe_scale)
        else:
            # one token per pixel and video, its frames in a row: the only layout copy on the way in
            tokens = self.proj_in(self.norm(x).view(videos, frames, channels, height * width)
                                  .permute(0, 3, 1, 2).reshape(-1, frames, channels))
            chunks = tokens.split(_pixels_per_chunk(tokens))
            tokens = (self._blocks(tokens, pe_scale) if len(chunks) == 1
                      else torch.cat([self._blocks(chunk, pe_scale) for chunk in chunks]))
            delta = (self.proj_out(tokens).view(videos, height * width, frames, channels)
                     .permute(0, 2, 3, 1).reshape(frames_total, channels, height, width))
        return delta.add_(x) if strength == 1.0 else torch.add(x, delta, alpha=strength)

    def _per_frame_layout(self, x, videos, proj_in, proj_out, pe_scale):
        """The same layer without transposing the activations: proj_in reads the frames' [C, H·W] planes as
        transposed matrices and proj_out writes them back the same way (one batched product per frame each).
        Between them each chunk of pixels is gathered into [pixels, frames, C] and scattered back, copies of
        whole C-wide rows. The copies this replaces moved one value at a time: 13% of the layers' time at
        256x256 on a 2-core AVX2 CPU."""
        frames_total, channels, height, width = x.shape
        frames, pixels = frames_total // videos, height * width
        planes = self.norm(x).view(frames_total, channels, pixels)
        (w_in, b_in), (w_out, b_out) = proj_in, proj_out
        tokens = torch.baddbmm(b_in, planes.transpose(1, 2), w_in.t().expand(frames_total, -1, -1))  # [BF, HW, C]
        by_pixel = tokens.view(videos, frames, pixels, channels).transpose(1, 2)  # [B, HW, F, C], a view
        # Buffers this size come fresh from the OS (page faults on first touch), so the blocks' output goes into
        # the normalised planes' memory, read by now, and proj_out's into the tokens', read by then.
        out = planes.view(frames_total, pixels, channels)
        out_by_pixel = out.view(videos, frames, pixels, channels).transpose(1, 2)
        step = _pixels_per_chunk(tokens.view(-1, frames, channels))
        for video in range(videos):
            for start in range(0, pixels, step):
                chunk = by_pixel[video, start:start + step].contiguous()  # [pixels, frames, C]
                out_by_pixel[video, start:start + step] = self._blocks(chunk, pe_scale)
        delta = tokens.view(frames_total, channels, pixels)
        torch.baddbmm(b_out[:, None], w_out.expand(frames_total, -1, -1), out.transpose(1, 2), out=delta)
        return delta.view(frames_total, channels, height, width)

    def _blocks(self, tokens, pe_scale):
        """The transformer blocks: per token, or across the frames of one pixel. tokens: [pixels, frames, C]."""
        for block in self.transformer_blocks:
            tokens = block(tokens, pe_scale)
        return tokens


class MotionLayer(nn.Module):
    """One motion-module position in the UNet (`<block>.motion_modules.<j>` in the file)."""

    def __init__(self, channels, max_frames, stored_pe=False, attentions=2):
        """stored_pe: the file brings its own positional encoding (else the fixed sinusoid is used).
        attentions: temporal self-attentions per block; motion modules have two ("Temporal_Self",
        "Temporal_Self"), SparseCtrl's layers one (its configs' attention_block_types)."""
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, max_frames, stored_pe, attentions)
        self.strength = 1.0
        self.pe_scale = 1.0

    @property
    def compute_dtype(self):
        return self.temporal_transformer.proj_in.weight.dtype

    def forward(self, x):
        out = self.temporal_transformer(x.to(self.compute_dtype), videos_in_batch(x), self.strength, self.pe_scale)
        return out.to(x.dtype)
