"""Our temporal layer against a reference written here from the formulas alone (motion/temporal_layer.py's docstring; AnimateDiff's animatediff/models/motion_module.py)."""
import math

import pytest
import torch

from fixture_motion import layer_weights
from fixture_selfcheck import oracles

POSITION = "mid_block.motion_modules.0"


def reference_layer(w, x, videos, max_frames, strength=1.0):
    """AnimateDiff's TemporalTransformer3DModel, spelled out in float64 (the self-check's oracle)."""
    return oracles.temporal_layer(w, x, videos, strength).to(x.dtype)


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
@pytest.mark.parametrize("height,width", [(5, 3), (8, 9)])  # below / from TRANSPOSING_MIN_PIXELS
def test_layer_run_in_pixel_chunks_matches_reference(pack, monkeypatch, pixels_per_chunk, height, width):
    """On CPU the layer runs a few pixels' tokens at a time (ragged last chunk; chunks across videos in the
    transposing layout, per video in the per-frame one), as ComfyUI runs it: in inference mode."""
    channels, frames, videos = 64, 8, 2
    monkeypatch.setattr(pack.motion.temporal_layer, "CPU_CHUNK_ELEMENTS", pixels_per_chunk * 8 * channels * frames)
    generator = torch.Generator().manual_seed(11)
    weights = layer_weights(channels, generator)
    layer = build_layer(pack, weights, channels, 32)
    layer.strength = 0.7
    x = torch.randn(videos * frames, channels, height, width, generator=generator)
    block, calls = layer.temporal_transformer.transformer_blocks[0], []
    monkeypatch.setattr(block, "forward", lambda tokens, pe_scale, forward=block.forward: calls.append(1) or forward(tokens, pe_scale))
    with pack.motion.video_batch.video_layout(videos), torch.inference_mode():
        ours = layer(x)
    pixels = height * width
    per_frame = pixels >= pack.motion.temporal_layer.TRANSPOSING_MIN_PIXELS
    assert len(calls) == (videos * math.ceil(pixels / pixels_per_chunk) if per_frame
                          else math.ceil(videos * pixels / pixels_per_chunk))
    torch.testing.assert_close(ours, reference_layer(weights, x, videos, 32, strength=0.7), atol=1e-5, rtol=1e-5)


def test_per_frame_layout_only_where_it_is_right(pack, monkeypatch):
    """The per-frame layout computes with proj_in/proj_out's own tensors and writes into its own buffers: where
    ComfyUI casts those per call (low-VRAM offload) or autograd records, the layer runs through the modules; every
    way gives the same output."""
    generator = torch.Generator().manual_seed(12)
    weights = layer_weights(32, generator)
    layer = build_layer(pack, weights, 32, 24)
    x = torch.randn(2 * 6, 32, 8, 8, generator=generator)
    expected = reference_layer(weights, x, 2, 24)
    used = []
    transformer = layer.temporal_transformer
    monkeypatch.setattr(transformer, "_per_frame_layout",
                        lambda *a, run=transformer._per_frame_layout: used.append(1) or run(*a))
    with pack.motion.video_batch.video_layout(2):
        with torch.inference_mode():
            torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
        assert used == [1]
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)  # autograd on: the modules' path
        transformer.proj_out.comfy_cast_weights = True  # as ComfyUI's low-VRAM load marks a layer
        with torch.inference_mode():
            torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    assert used == [1]


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
