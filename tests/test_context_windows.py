"""Context windows: the windows, their fuse weights, and the windowed UNet call inside a real ComfyUI."""
import pytest
import torch

from fixture_controlnet import tiny_controlnet
from fixture_models import TINY_CHANNELS
from fixture_motion import motion_state_dict, save_safetensors
from fixture_sampling import denoise, one_step_sample
from fixture_selfcheck import oracles

pytestmark = pytest.mark.usefixtures("nothing_loaded")  # each test starts with no patched model loaded


@pytest.fixture(scope="module")
def cw(pack):
    return pack.motion.context_windows


def options(cw, **kwargs):
    return cw.ContextOptions(**{"freenoise": False, **kwargs})


def tiny_module(pack, tmp_path, family="animatelcm_t2v"):
    path = tmp_path / f"{family}.safetensors"
    save_safetensors(motion_state_dict(family, TINY_CHANNELS), path)
    return pack.motion.motion_module.load_motion_module(str(path))


def with_options(model, key, value):
    patched = model.clone()
    patched.model_options["transformer_options"] = {**patched.model_options.get("transformer_options", {}), key: value}
    return patched


def inputs(frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(frames, 4, 8, 8, generator=generator), torch.randn(frames, 77, 768, generator=generator)


bit_reversed = oracles.bit_reversed  # an independent h(step) (the self-check's oracle)


# --- the windows -------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["uniform", "static", "batched"])
@pytest.mark.parametrize("closed_loop", [False, True])
def test_windows_cover_every_frame(cw, schedule, closed_loop):
    for frames in (17, 24, 40, 63, 100, 256):
        for step in range(6):
            opts = options(cw, schedule=schedule, closed_loop=closed_loop)
            windows = cw.context_windows(frames, opts, step)
            assert sorted({f for w in windows for f in w}) == list(range(frames)), (frames, step)
            assert all(len(w) <= 16 for w in windows)
            if schedule != "batched":
                assert all(len(w) == 16 for w in windows)
            if not closed_loop:  # frames in order inside every window: no wrap from the end to the start
                assert all(w == list(range(w[0], w[0] + len(w))) for w in windows)
            assert len({tuple(w) for w in windows}) == len(windows)


def test_static_windows_step_by_length_minus_overlap(cw):
    opts = options(cw, schedule="static")
    assert cw.context_windows(40, opts) == [list(range(0, 16)), list(range(12, 28)), list(range(24, 40))]
    assert cw.context_windows(16, opts) == [list(range(16))]  # one window: the video itself
    windows = cw.context_windows(256, opts)
    assert len(windows) == 21 and windows[-1] == list(range(240, 256))  # 21·16/256 = 1.31x the frames
    assert cw.context_windows(40, options(cw, schedule="batched")) == [
        list(range(0, 16)), list(range(16, 32)), list(range(32, 40))]


def test_uniform_schedule_shifts_the_grid_every_step(cw):
    frames, opts = 64, options(cw, schedule="uniform", closed_loop=True)
    seen = []
    for step in range(4):
        shift = round(frames * bit_reversed(step))  # 0, 32, 16, 48
        windows = cw.context_windows(frames, opts, step)
        starts = [w[0] for w in windows]
        assert starts == [(shift + 12 * k) % frames for k in range(len(windows))]
        assert all(w == [(w[0] + k) % frames for k in range(16)] for w in windows)  # closed loop: wraps around
        seen.append(windows)
    assert [bit_reversed(s) for s in range(4)] == [0, 0.5, 0.25, 0.75]
    assert all(seen[i] != seen[j] for i in range(4) for j in range(i))  # the seams move every step
    open_loop = cw.context_windows(frames, options(cw, schedule="uniform"), 1)
    assert list(range(48, 64)) in open_loop and list(range(16)) in open_loop  # the wrapped window is split


def test_fuse_weights(cw):
    def weights(fuse, window, frames=40):
        return cw.fuse_weights(window, frames, options(cw, fuse=fuse)).tolist()
    middle = list(range(12, 28))
    assert weights("pyramid", middle) == [1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1]
    assert weights("pyramid", [0, 1, 2, 3, 4]) == [1, 2, 3, 2, 1]
    assert weights("flat", middle) == [1.0] * 16
    ramp = [0.2, 0.4, 0.6, 0.8]
    assert weights("overlap-linear", middle) == pytest.approx(ramp + [1.0] * 8 + ramp[::-1])
    assert weights("overlap-linear", list(range(16))) == pytest.approx([1.0] * 12 + ramp[::-1])  # first window
    assert weights("overlap-linear", list(range(24, 40))) == pytest.approx(ramp + [1.0] * 12)  # last window


@pytest.mark.parametrize("fuse", ["pyramid", "flat", "overlap-linear"])
def test_fuse_is_the_weighted_average_whatever_the_window_order(cw, fuse):
    frames, videos, opts = 40, 2, options(cw, schedule="static", fuse=fuse)
    windows = cw.context_windows(frames, opts)
    generator = torch.Generator().manual_seed(0)
    results = [(w, torch.randn(videos * len(w), 4, 2, 2, generator=generator)) for w in windows]
    expected = torch.zeros(videos * frames, 4, 2, 2, dtype=torch.float64)
    total = torch.zeros(videos * frames, dtype=torch.float64)
    for window, output in results:  # the plain loop: every row of every window, weight by weight
        weights = cw.fuse_weights(window, frames, opts).double()
        for v in range(videos):
            for k, frame in enumerate(window):
                expected[v * frames + frame] += weights[k] * output[v * len(window) + k].double()
                total[v * frames + frame] += weights[k]
    expected /= total.view(-1, 1, 1, 1)
    fused = cw.fuse(results, (videos * frames, 4, 2, 2), frames, videos, opts)
    torch.testing.assert_close(fused.double(), expected, atol=1e-6, rtol=1e-6)
    assert torch.equal(cw.fuse(results[::-1], fused.shape, frames, videos, opts), fused)
    shuffled = [results[i] for i in (1, 2, 0)]
    assert torch.equal(cw.fuse(shuffled, fused.shape, frames, videos, opts), fused)


# --- the windowed UNet call ---------------------------------------------------------------------------

def test_a_video_within_one_window_is_the_unwindowed_result_bit_for_bit(pack, cw, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    windowed = pack.nodes.context_nodes.ContextWindows().apply(animated, 16, 4, "uniform", False, "pyramid", True)[0]
    for frames in (8, 16):
        x, context = inputs(frames, seed=frames)
        assert torch.equal(denoise(windowed, x, context, [1, 0]), denoise(animated, x, context, [1, 0]))


def test_windowed_call_is_the_fused_windows_run_alone(pack, cw, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    opts = options(cw, schedule="static", context_length=8, overlap=2)
    windowed = with_options(animated, cw.CONTEXT_KEY, opts)
    x, context = inputs(20, seed=4)  # per-frame prompts: each window must get its own frames' rows
    out = denoise(windowed, x, context, [1, 0])
    windows = cw.context_windows(20, opts)
    assert windows == [list(range(0, 8)), list(range(6, 14)), list(range(12, 20))]
    expected, total = torch.zeros_like(out), torch.zeros(40)
    for window in windows:
        alone = denoise(animated, x[window], context[window], [1, 0])
        weights = torch.tensor([1.0, 2, 3, 4, 4, 3, 2, 1])
        for v in range(2):
            expected[[v * 20 + f for f in window]] += alone[v * 8:(v + 1) * 8] * weights.view(-1, 1, 1, 1)
            total[[v * 20 + f for f in window]] += weights
    torch.testing.assert_close(out, expected / total.view(-1, 1, 1, 1), atol=1e-5, rtol=1e-5)


def test_a_per_frame_controlnet_hint_reaches_each_windows_frames(pack, cw, tiny_model, tmp_path):
    """ComfyUI's own ControlNet object through sample_custom: each window must see its own frames' hint."""
    import nodes
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    opts = options(cw, schedule="static", context_length=8, overlap=2)
    windowed = with_options(animated, cw.CONTEXT_KEY, opts)
    control = tiny_controlnet(tiny_model)
    frames = 20
    generator = torch.Generator().manual_seed(5)
    hint = torch.rand(frames, 64, 64, 3, generator=generator) * torch.linspace(0, 1, frames).view(-1, 1, 1, 1)
    noise = torch.randn(frames, 4, 8, 8, generator=generator)
    prompt = torch.randn(1, 77, 768, generator=generator)

    def positive(frame_hint):
        return nodes.ControlNetApply().apply_controlnet([[prompt, {}]], control, frame_hint, 1.0)[0]
    negative = [[torch.zeros(1, 77, 768), {}]]
    out = one_step_sample(pack, windowed, noise, positive(hint), negative)

    def fused(hint_of):
        total, weight = torch.zeros_like(out), torch.zeros(frames)
        for window in cw.context_windows(frames, opts):
            alone = one_step_sample(pack, animated, noise[window], positive(hint_of(window)), negative)
            w = cw.fuse_weights(window, frames, opts)
            total[window] += alone * w.view(-1, 1, 1, 1)
            weight[window] += w
        return total / weight.view(-1, 1, 1, 1)
    torch.testing.assert_close(out, fused(lambda window: hint[window]), atol=1e-4, rtol=1e-4)
    broadcast = fused(lambda window: hint[:len(window)])  # what a frame-0 broadcast of the hint would give
    assert (out - broadcast).abs().max() > 100 * (out - fused(lambda window: hint[window])).abs().max()


def test_the_frame_limit_applies_per_window(pack, cw, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path, family="v2"))  # 32 frames
    x, context = inputs(40, seed=6)
    with pytest.raises(ValueError, match="40 frames.*at most 32.*Context Windows.*Extend Frame Positions"):
        denoise(animated, x, context, [0])
    node = pack.nodes.context_nodes.ContextWindows()
    assert torch.isfinite(denoise(node.apply(animated, 16, 4, "uniform", False, "pyramid", True)[0],
                                    x, context, [0])).all()
    with pytest.raises(ValueError, match="context_length 36 is longer than the 32 frames"):
        denoise(node.apply(animated, 36, 4, "uniform", False, "pyramid", True)[0], x, context, [0])


def test_core_context_windows_are_not_doubled(pack, cw, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    core = animated.clone()
    core.model_options["context_handler"] = object()  # what ComfyUI's core Context Windows node adds
    with pytest.raises(ValueError, match="already has ComfyUI's own context windows"):
        pack.nodes.context_nodes.ContextWindows().apply(core, 16, 4, "uniform", False, "pyramid", True)
    # core windows already cut the batch (and say so in transformer_options): our wrapper defers to them
    windowed = with_options(animated, cw.CONTEXT_KEY, options(cw, context_length=8, overlap=2))
    x, context = inputs(12, seed=7)
    deferred = denoise(windowed, x, context, [0], extra_options={"context_window": object()})
    assert torch.equal(deferred, denoise(animated, x, context, [0]))


def test_progress_moves_per_window_and_cancel_stops_within_a_step(pack, cw, host, tiny_model, tmp_path):
    import comfy.model_management
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path))
    windowed = pack.nodes.context_nodes.ContextWindows().apply(animated, 8, 2, "static", False, "pyramid", False)[0]
    noise, context = inputs(20, seed=8)
    positive, negative = [[context[:1], {}]], [[torch.zeros(1, 77, 768), {}]]
    host.progress.clear()
    before = one_step_sample(pack, windowed, noise, positive, negative, steps=2)
    assert [(v, t) for v, t, _ in host.progress][:3] == [(1, 6), (2, 6), (3, 6)]  # 3 windows x 2 steps

    calls = []

    def cancel_after_two_windows(apply_model, args):  # a wrapper set before the motion module: runs per window
        calls.append(args["input"].shape[0])
        if len(calls) == 2:
            comfy.model_management.interrupt_current_processing(True)
        return apply_model(args["input"], args["timestep"], **args["c"])
    counting = tiny_model.clone()
    counting.set_model_unet_function_wrapper(cancel_after_two_windows)
    cancelled = pack.nodes.context_nodes.ContextWindows().apply(
        pack.motion.injection.animate(counting, tiny_module(pack, tmp_path)), 8, 2, "static", False, "pyramid", False)[0]
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            one_step_sample(pack, cancelled, noise, positive, negative, steps=2)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert calls == [8, 8]  # stopped before the third window of the first step
    assert torch.equal(one_step_sample(pack, windowed, noise, positive, negative, steps=2), before)


# --- frame positions past the encoding -----------------------------------------------------------------

def test_frame_positions_extrapolate_and_interpolate_the_encoding(pack):
    fp = pack.motion.frame_positions
    pe = pack.motion.temporal_layer.sinusoidal_position_encoding(64, 32)
    assert torch.equal(fp.position_encoding(pe, 40), pe[:, :40])
    with fp.frame_positions("extrapolate"):
        long = fp.position_encoding(pe, 100)
    assert torch.equal(long[:, :64], pe)
    torch.testing.assert_close(long, pack.motion.temporal_layer.sinusoidal_position_encoding(100, 32))
    with fp.frame_positions("interpolate"):
        spread = fp.position_encoding(pe, 127)  # positions 0, 0.5, 1, ... 63
    assert torch.equal(spread[:, 0::2], pe)
    torch.testing.assert_close(spread[:, 1::2], (pe[:, :-1] + pe[:, 1:]) / 2)


def test_extend_frame_positions_lets_one_window_pass_the_encoding(pack, tiny_model, tmp_path):
    animated = pack.motion.injection.animate(tiny_model, tiny_module(pack, tmp_path, family="v1"))  # 24 frames
    x, context = inputs(30, seed=9)
    node = pack.nodes.context_nodes.ExtendFramePositions()
    extrapolated = denoise(node.apply(animated, "extrapolate")[0], x, context, [0])
    interpolated = denoise(node.apply(animated, "interpolate")[0], x, context, [0])
    assert torch.isfinite(extrapolated).all() and not torch.allclose(extrapolated, interpolated)
    assert "transformer_options" not in animated.model_options or \
        pack.motion.frame_positions.POSITIONS_KEY not in animated.model_options["transformer_options"]
