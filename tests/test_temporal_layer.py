"""Our temporal layer against a reference written here from the formulas alone (REFERENCE.md §3)."""
import math

import pytest
import torch

from fixture_motion import layer_weights

POSITION = "mid_block.motion_modules.0"


def reference_layer(w, x, videos, max_frames, strength=1.0):
    """AnimateDiff's TemporalTransformer3DModel, spelled out: plain einsum attention, explicit sinusoid."""
    t = "temporal_transformer."
    bf, c, hgt, wid = x.shape
    f = bf // videos
    heads = 8
    gn = torch.nn.functional.group_norm(x, 32, w[t + "norm.weight"], w[t + "norm.bias"], eps=1e-6)
    h = gn.reshape(videos, f, c, hgt * wid).permute(0, 3, 1, 2).reshape(videos * hgt * wid, f, c)
    h = h @ w[t + "proj_in.weight"].T + w[t + "proj_in.bias"]
    pe = torch.zeros(f, c)
    for pos in range(f):
        for i in range(0, c, 2):
            angle = pos / (10000 ** (i / c))
            pe[pos, i], pe[pos, i + 1] = math.sin(angle), math.cos(angle)
    b = t + "transformer_blocks.0."

    def layer_norm(v, name):
        return torch.nn.functional.layer_norm(v, (c,), w[name + ".weight"], w[name + ".bias"])

    for a in range(2):
        p = f"{b}attention_blocks.{a}."
        inp = layer_norm(h, f"{b}norms.{a}") + pe
        q, k, v = (inp @ w[p + n + ".weight"].T for n in ("to_q", "to_k", "to_v"))
        q, k, v = (m.reshape(m.shape[0], f, heads, c // heads) for m in (q, k, v))
        scores = torch.einsum("nfhd,nghd->nhfg", q, k) / math.sqrt(c // heads)
        out = torch.einsum("nhfg,nghd->nfhd", scores.softmax(-1), v).reshape(-1, f, c)
        h = h + out @ w[p + "to_out.0.weight"].T + w[p + "to_out.0.bias"]
    inp = layer_norm(h, b + "ff_norm")
    proj = inp @ w[b + "ff.net.0.proj.weight"].T + w[b + "ff.net.0.proj.bias"]
    hidden, gate = proj[..., : 4 * c], proj[..., 4 * c:]
    g = 0.5 * gate * (1 + torch.erf(gate / math.sqrt(2)))
    h = h + (hidden * g) @ w[b + "ff.net.2.weight"].T + w[b + "ff.net.2.bias"]
    h = h @ w[t + "proj_out.weight"].T + w[t + "proj_out.bias"]
    delta = h.reshape(videos, hgt * wid, f, c).permute(0, 2, 3, 1).reshape(bf, c, hgt, wid)
    return x + strength * delta


def module_of(pack, weights, max_frames, stored_pe=False):
    """A MotionModule holding one layer's weights (original names) at the mid-block position."""
    weights = dict(weights)
    if stored_pe:
        from fixture_motion import _sinusoid
        for a in range(2):
            key = f"temporal_transformer.transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe"
            weights[key] = _sinusoid(max_frames, weights["temporal_transformer.proj_in.weight"].shape[0])
    motion_format = pack.motion.formats.MotionFormat("test", max_frames, True)
    return pack.motion.motion_module.MotionModule(
        "test", motion_format, {f"{POSITION}.{k}": v for k, v in weights.items()})


def build_layer(pack, weights, channels, max_frames, dtype=torch.float32, stored_pe=False):
    return module_of(pack, weights, max_frames, stored_pe).build_layers(dtype)[POSITION]


@pytest.mark.parametrize("frames,videos,stored_pe", [(1, 1, False), (4, 1, True), (8, 2, False), (16, 2, True)])
def test_layer_matches_reference_fp32(pack, frames, videos, stored_pe):
    channels = 64
    generator = torch.Generator().manual_seed(frames)
    weights = layer_weights(channels, generator)
    layer = build_layer(pack, weights, channels, 32, stored_pe=stored_pe)
    x = torch.randn(videos * frames, channels, 5, 3, generator=generator)
    with pack.motion.video_batch.video_layout(videos):
        ours = layer(x)
    expected = reference_layer(weights, x, videos, 32)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pixels_per_chunk", [1, 4, 7])
def test_layer_run_in_pixel_chunks_matches_reference(pack, monkeypatch, pixels_per_chunk):
    """On CPU the layer runs a few pixels' tokens at a time (ragged last chunk, chunks across videos)."""
    channels, frames, videos = 64, 8, 2
    monkeypatch.setattr(pack.motion.temporal_layer, "CPU_CHUNK_ELEMENTS", pixels_per_chunk * 8 * channels * frames)
    generator = torch.Generator().manual_seed(11)
    weights = layer_weights(channels, generator)
    layer = build_layer(pack, weights, channels, 32)
    layer.strength = 0.7
    x = torch.randn(videos * frames, channels, 5, 3, generator=generator)
    proj_out, calls = layer.temporal_transformer.proj_out, []
    monkeypatch.setattr(proj_out, "forward", lambda tokens, forward=proj_out.forward: calls.append(1) or forward(tokens))
    with pack.motion.video_batch.video_layout(videos):
        ours = layer(x)
    assert len(calls) == math.ceil(videos * 5 * 3 / pixels_per_chunk)
    torch.testing.assert_close(ours, reference_layer(weights, x, videos, 32, strength=0.7), atol=1e-5, rtol=1e-5)


def test_layer_strength_scales_only_the_motion_delta(pack):
    generator = torch.Generator().manual_seed(3)
    weights = layer_weights(32, generator)
    layer = build_layer(pack, weights, 32, 24)
    layer.strength = 0.3
    x = torch.randn(6, 32, 4, 4, generator=generator)
    with pack.motion.video_batch.video_layout(1):
        ours = layer(x)
    torch.testing.assert_close(ours, reference_layer(weights, x, 1, 24, strength=0.3), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 1e-1)])
def test_layer_follows_low_precision_dtypes(pack, dtype, tol):
    generator = torch.Generator().manual_seed(5)
    weights = layer_weights(32, generator)
    layer = build_layer(pack, weights, 32, 16, dtype)
    x = torch.randn(8, 32, 4, 4, generator=generator)
    with pack.motion.video_batch.video_layout(2):
        ours = layer(x.to(dtype))
    assert ours.dtype == dtype
    assert layer.temporal_transformer.proj_in.weight.dtype == dtype
    torch.testing.assert_close(ours.float(), reference_layer(weights, x, 2, 16), atol=tol, rtol=tol)


def test_each_video_in_the_batch_attends_only_to_its_own_frames(pack):
    generator = torch.Generator().manual_seed(7)
    layer = build_layer(pack, layer_weights(32, generator), 32, 16)
    a, b = torch.randn(4, 32, 3, 3, generator=generator), torch.randn(4, 32, 3, 3, generator=generator)
    with pack.motion.video_batch.video_layout(2):
        together = layer(torch.cat([a, b]))
    with pack.motion.video_batch.video_layout(1):
        alone_a, alone_b = layer(a), layer(b)
    torch.testing.assert_close(together, torch.cat([alone_a, alone_b]), atol=1e-6, rtol=1e-6)


def test_layer_outside_the_wrapper_says_what_to_do(pack):
    layer = build_layer(pack, layer_weights(32, torch.Generator().manual_seed(0)), 32, 16)
    with pytest.raises(RuntimeError, match="Apply Motion Module"):
        layer(torch.randn(2, 32, 2, 2))
