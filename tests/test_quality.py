"""The quality engine (quality/): each measure against a case with a known answer, VBench's flicker formula
written out independently, the window seams of each schedule, and what bad frames are told."""
import importlib
import json

import cv2
import numpy as np
import pytest

from fixture_quality import moving, texture, with_seams


@pytest.fixture(scope="module")
def quality(pack):
    return lambda name: importlib.import_module(f"{pack.__name__}.quality.{name}")


@pytest.fixture(scope="module")
def measure(quality):
    return quality("report").measure_video


# --- the measures against known answers -------------------------------------------------------------

def test_a_still_clip_scores_flicker_1_warping_error_0_motion_0(measure):
    report = measure(iter([texture(64)] * 6))
    assert (report["flicker"], report["warping_error"], report["motion"]) == (1.0, 0.0, 0.0)
    assert report["pairs"]["flicker"] == [1.0] * 5 and report["pairs"]["visible"] == [1.0] * 5
    assert report["loop_seam"]["score"] == 1.0  # the last frame is the first: the loop closes


@pytest.mark.parametrize("step", [(0.25, 0.0), (0.5, 0.5), (0.0, 1.5), (-0.7, 0.3)])
def test_a_texture_moved_by_a_known_sub_pixel_shift(measure, step):
    frames = moving(6, step=step)
    report = measure(iter(frames))
    shift = float(np.hypot(*step))
    assert all(abs(m - shift) < 0.1 for m in report["pairs"]["motion"]), (shift, report["pairs"]["motion"])
    # the warped frame matches away from the borders (the pixels the flow brings in from outside are left out):
    # far below the squared change of the same pairs without following the motion
    unfollowed = np.mean([np.mean(((a / 255.0) - (b / 255.0)) ** 2) for a, b in zip(frames, frames[1:])])
    assert max(report["pairs"]["warping_error"]) < min(2e-5, unfollowed / 10)
    assert min(report["pairs"]["visible"]) > 0.85


def test_one_brightened_frame_spikes_the_flicker_curve_at_its_pairs(measure):
    frames = moving(12)
    frames[7] = cv2.add(frames[7], np.full_like(frames[7], 40))  # saturating: what a brightness jump does
    report = measure(iter(frames))
    curve = report["pairs"]["flicker"]
    lowest = sorted(range(1, 12), key=lambda t: curve[t - 1])[:2]
    assert sorted(lowest) == [7, 8]  # pair t is frame t-1 -> t: frame 7 is in pairs 7 and 8 only
    others = [curve[t - 1] for t in range(1, 12) if t not in (7, 8)]
    assert max(curve[6], curve[7]) < min(others) - 0.05
    assert report["worst"]["flicker"][:2] in ([7, 8], [8, 7])
    assert set(report["worst"]["warping_error"][:2]) == {7, 8}


def test_flicker_is_vbenchs_formula(measure):
    """VBench's cal_score: (255 - mean over pairs of the MAE of two frames' 8-bit values) / 255, written out in
    float64, and VBench's own float32 lines (cv2.absdiff of float32 copies), equal to float32's precision."""
    generator = np.random.default_rng(3)
    frames = [generator.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(7)]
    pairs = list(zip(frames, frames[1:]))
    maes = [np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))) for a, b in pairs]
    vbench = [np.mean(cv2.absdiff(np.array(a, dtype=np.float32), np.array(b, dtype=np.float32))) for a, b in pairs]
    report = measure(iter(frames))
    assert report["flicker"] == pytest.approx((255.0 - np.mean(maes)) / 255.0, abs=1e-12)
    assert report["pairs"]["flicker"] == pytest.approx([(255.0 - m) / 255.0 for m in maes], abs=1e-12)
    assert report["flicker"] == pytest.approx((255.0 - np.mean(vbench).item()) / 255.0, abs=1e-6)


def test_a_loop_that_jumps_back_has_a_large_loop_seam(measure):
    closing = [texture(64, 0.5 * t) for t in range(4)] + [texture(64, 0.5 * (4 - t)) for t in range(4)]
    jumping = moving(8, step=(2.0, 0.0))  # the last frame is 14 px from the first
    assert measure(iter(closing))["loop_seam"]["score"] < 2
    assert measure(iter(jumping))["loop_seam"]["score"] > 20


# --- window seams -----------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, options, steps, seams", [
    (40, dict(context_length=16, overlap=4, schedule="static"), 4, [12, 16, 24, 28]),
    (40, dict(context_length=16, overlap=0, schedule="batched"), 4, [16, 32]),
    # uniform, by hand: step shifts 0, 16, 8, 24 of 32 frames; windows [0-15 12-27 16-31], [16-31 0-15 8-23],
    # [8-23 16-31 0-15], [16-31 0-15 4-19]: their edges fall between frames 3|4, 7|8, ... 27|28
    (32, dict(context_length=16, overlap=4, schedule="uniform"), 4, [4, 8, 12, 16, 20, 24, 28]),
    (32, dict(context_length=16, overlap=4, schedule="uniform"), 1, [12, 16, 28]),
    (16, dict(context_length=16, overlap=4, schedule="uniform"), 4, []),  # one window: no seam
])
def test_window_seams_of_each_schedule(pack, quality, frames, options, steps, seams):
    windows = pack.motion.context_windows.ContextOptions(**options)
    assert quality("seams").window_seams(frames, windows, steps) == seams


def test_a_seam_at_the_windows_raises_their_seam_score_only(pack, measure):
    options = pack.motion.context_windows.ContextOptions
    given = options(context_length=16, overlap=4, schedule="static")  # seams 12, 16, 24, 28
    other = options(context_length=10, overlap=0, schedule="batched")  # seams 10, 20, 30
    clean, seamed = moving(40), with_seams(moving(40), [12, 16, 24, 28])
    assert measure(iter(clean), given)["window_seam"]["score"] == pytest.approx(1, abs=0.3)
    report = measure(iter(seamed), given)
    assert report["window_seam"]["score"] > 5 and report["window_seam"]["seams"] == [12, 16, 24, 28]
    assert measure(iter(seamed), other)["window_seam"]["score"] < 1  # its seams are the quiet pairs
    unwindowed = measure(iter(seamed))
    assert unwindowed["window_seam"] == {"score": 1.0, "at_seams": None, "elsewhere": unwindowed["warping_error"],
                                         "seams": [], "windows": None, "note": "no context windows given"}


# --- bad frames, the JSON, the plot -----------------------------------------------------------------

def test_one_frame_and_frames_of_different_sizes_are_refused_by_name(quality, measure):
    error = quality("report").QualityInputError
    with pytest.raises(error, match="clip.webm has 1 frame: the measures compare consecutive frames, so a video "
                                    "needs at least 2"):
        measure(iter([texture(16)]), name="clip.webm")
    with pytest.raises(error, match="has 0 frames"):
        measure(iter([]))
    with pytest.raises(error, match="frame 2 is 24x24 but frame 0 is 16x16: .* every frame must have one size"):
        measure(iter([texture(16), texture(16), texture(24)]))
    with pytest.raises(error, match="frame 0 is not 8-bit RGB"):
        measure(iter([np.zeros((8, 8, 3), dtype=np.float32)] * 2))


def test_the_json_never_holds_nan(quality, measure):
    report = measure(iter(moving(3)))
    report["motion"] = float("nan")
    text = quality("report").to_json(report)
    assert json.loads(text)["motion"] is None and "NaN" not in text


def test_the_plot_marks_the_seams(pack, quality, measure):
    plot = quality("plot")
    seamed = measure(iter(moving(40)), pack.motion.context_windows.ContextOptions(16, 4, "static"))
    plain = measure(iter(moving(40)))
    for report, marked in ((seamed, True), (plain, False)):
        picture = plot.plot(report)
        assert picture.dtype == np.uint8 and picture.shape[1] == plot.WIDTH and picture.shape[2] == 3
        seam_coloured = np.all(picture == np.array(plot.SEAM, dtype=np.uint8), axis=2).sum()
        assert (seam_coloured > 300) == marked  # three panels' lines of four seams, 80 px each
