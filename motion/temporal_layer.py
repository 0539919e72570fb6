"""AnimateDiff's temporal transformer: the layer a motion module adds after each UNet block.

Per layer (AnimateDiff / AnimateLCM `TemporalTransformer3DModel`, one transformer block):
    h = proj_in(GroupNorm(x))                        GroupNorm per frame, then one token per pixel
    for each of the two temporal self-attentions:    attention runs across frames, for every pixel
        h = h + Attention(LayerNorm(h) + pe[:frames])
    h = h + GEGLU_FeedForward(LayerNorm(h))
    out = x + strength · proj_out(h)                 proj_out is zero-initialised in training
Parameter names are those of the original checkpoints, so a state dict loads as it is.
"""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .video_batch import videos_in_batch

HEADS = 8


def sinusoidal_position_encoding(max_frames, channels):
    """The fixed encoding of AnimateDiff's PositionalEncoding: sin on even, cos on odd channels."""
    position = torch.arange(max_frames, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, max_frames, channels)
    pe[0, :, 0::2] = torch.sin(position * div_term)
    pe[0, :, 1::2] = torch.cos(position * div_term)
    return pe


class PositionEncoder(nn.Module):
    def __init__(self, max_frames, channels):
        super().__init__()
        self.register_buffer("pe", torch.empty(1, max_frames, channels))


class TemporalAttention(nn.Module):
    def __init__(self, channels, max_frames):
        super().__init__()
        self.heads = HEADS
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])
        self.pos_encoder = PositionEncoder(max_frames, channels)

    def forward(self, tokens, pe_scale=1.0):
        """tokens: [pixels, frames, channels]."""
        frames = tokens.shape[1]
        tokens = tokens + pe_scale * self.pos_encoder.pe[:, :frames].to(tokens.dtype)
        q, k, v = (rearrange(proj(tokens), "n f (h d) -> n h f d", h=self.heads)
                   for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](rearrange(out, "n h f d -> n f (h d)"))


class GEGLUFeedForward(nn.Module):
    """diffusers' FeedForward(activation_fn="geglu"): net.0.proj doubles the width for the gate."""

    def __init__(self, channels, mult=4):
        super().__init__()
        inner = channels * mult
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), nn.Linear(inner, channels)])
        self.net[0].proj = nn.Linear(channels, inner * 2)

    def forward(self, x):
        hidden, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](hidden * F.gelu(gate))


class TemporalTransformerBlock(nn.Module):
    def __init__(self, channels, max_frames):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(channels, max_frames) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(2)])
        self.ff = GEGLUFeedForward(channels)
        self.ff_norm = nn.LayerNorm(channels)

    def forward(self, tokens, pe_scale=1.0):
        for attention, norm in zip(self.attention_blocks, self.norms):
            tokens = attention(norm(tokens), pe_scale) + tokens
        return self.ff(self.ff_norm(tokens)) + tokens


class TemporalTransformer(nn.Module):
    def __init__(self, channels, max_frames):
        super().__init__()
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, max_frames)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x, videos, strength=1.0, pe_scale=1.0):
        """x: [videos·frames, C, H, W], the frames of each video consecutive in the batch."""
        height, width = x.shape[-2:]
        tokens = rearrange(self.norm(x), "(b f) c h w -> (b h w) f c", b=videos)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, pe_scale)
        delta = rearrange(self.proj_out(tokens), "(b h w) f c -> (b f) c h w", b=videos, h=height, w=width)
        return x + delta if strength == 1.0 else x + strength * delta


class MotionLayer(nn.Module):
    """One motion-module position in the UNet (`<block>.motion_modules.<j>` in the file)."""

    def __init__(self, channels, max_frames):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, max_frames)
        self.strength = 1.0
        self.pe_scale = 1.0

    def forward(self, x):
        dtype = self.temporal_transformer.proj_in.weight.dtype
        out = self.temporal_transformer(x.to(dtype), videos_in_batch(x), self.strength, self.pe_scale)
        return out.to(x.dtype)
