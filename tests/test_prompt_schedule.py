"""Prompt Schedule: the formats users write read into hand-checked keyframes, bad lines refused by line, and the
per-frame CONDITIONING checked against CLIP Text Encode (ComfyUI's own node) and a plain blend written here."""
import pytest
import torch

import stand_ins

pytestmark = pytest.mark.usefixtures("nothing_loaded")


@pytest.fixture(scope="module")
def schedule(pack):
    return pack.prompts.schedule


def keys(schedule, text, frames=64, **kwargs):
    """(frame, prompt, hold) of each keyframe."""
    return [(k.frame, k.prompt, k.hold) for k in schedule.keyframes(text, frames, **kwargs)]


# --- the formats and index forms ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '"0": "a fox sleeping", "16": "the fox wakes up"',  # FizzNodes, one line
    '{\n  "0" : "a fox sleeping",\n  "16": "the fox wakes up"\n}',  # FizzNodes with braces, spaces
    '"0": "a fox sleeping"\n"16": "the fox wakes up",',  # no comma between entries, one after the last
    '0 = "a fox sleeping", 16 = "the fox wakes up"',  # AnimateDiff-Evolved pythonic
    "0: a fox sleeping\n16: the fox wakes up",  # the A1111 extension
    "\n  0:a fox sleeping  \n\n16 :  the fox wakes up\n",  # blank lines, spacing
], ids=["fizz", "fizz-braces", "fizz-no-comma", "pythonic", "a1111", "a1111-spacing"])
def test_every_format_gives_the_same_keyframes(schedule, text):
    assert keys(schedule, text) == [(0, "a fox sleeping", False), (16, "the fox wakes up", False)]


def test_a1111_head_and_tail_and_pre_and_app_text(schedule):
    text = "masterpiece\nbest quality\n0: a fox sleeping\n32: a fox running\nsnow, winter"
    assert keys(schedule, text) == [(0, "masterpiece, best quality, a fox sleeping, snow, winter", False),
                                    (32, "masterpiece, best quality, a fox running, snow, winter", False)]
    assert keys(schedule, '"0": "a fox", "8": ""', pre_text="film still ", app_text=" 4k") == [
        (0, "film still, a fox, 4k", False), (8, "film still, 4k", False)]


def test_index_forms(schedule):
    # ADE: -n from the end, a fraction of the frames (1.0 = the last), ranges held, "16:" held to the next key
    assert keys(schedule, '"-1": "end", "0.5": "middle", "0.25": "quarter", "0": "start"', frames=64) == [
        (0, "start", False), (16, "quarter", False), (32, "middle", False), (63, "end", False)]
    assert keys(schedule, '"1.0": "last", "0": "first"', frames=10) == [(0, "first", False), (9, "last", False)]
    assert keys(schedule, "0:12: a fox sleeping\n16:: a fox running\n40: a forest") == [
        (0, "a fox sleeping", True), (11, "a fox sleeping", False), (16, "a fox running", True),
        (40, "a forest", False)]
    assert keys(schedule, '"8:-8": "held", "-4": "end"', frames=32) == [(8, "held", True), (23, "held", False),
                                                                         (28, "end", False)]
    assert keys(schedule, "0: a\n8: b", interpolation="none") == [(0, "a", True), (8, "b", True)]


def test_blend_plan(schedule):
    plan = schedule.blend(schedule.keyframes("2: a\n6: b\n8:: c\n11: d", 14), 14)
    assert plan.prompts == ["a", "b", "c", "d"]
    expected = [  # frame: (first, second, weight), by hand
        ("a", "a", 0), ("a", "a", 0), ("a", "a", 0), ("a", "b", .25), ("a", "b", .5), ("a", "b", .75),
        ("b", "c", 0), ("b", "c", .5), ("c", "d", 0), ("c", "d", 0), ("c", "d", 0), ("d", "d", 0), ("d", "d", 0),
        ("d", "d", 0)]
    got = [(plan.prompts[f], plan.prompts[s], w) for f, s, w in zip(plan.first, plan.second, plan.weight)]
    assert [(f, w) for f, _, w in got] == [(f, w) for f, _, w in expected]
    assert all(s == e[1] for (_, s, w), e in zip(got, expected) if w)
    # start_frame: the same story from frame 5 on
    later = schedule.blend(schedule.keyframes("2: a\n6: b\n8:: c\n11: d", 9, start_frame=5), 9, start_frame=5)
    assert [(later.prompts[f], w) for f, w in zip(later.first, later.weight)] == [(f, w) for f, _, w in expected[5:]]


@pytest.mark.parametrize("text, frames, start_frame, message", [
    ("", 16, 0, "the schedule is empty"),
    ("  \n \n", 16, 0, "the schedule is empty"),
    ("a fox sleeping", 16, 0, "has no keyframe: write one per line as '16: a fox running'.*'0: a fox sleeping'"),
    ("0: a fox\nthe fox wakes\n16: a forest", 32, 0,
     "line 2 of the schedule is not a schedule entry: 'the fox wakes', and keyframes follow it"),
    ("0: a fox\n16 = a forest", 32, 0, "line 2 of the schedule is not a schedule entry: '16 = a forest'. Write '16: "),
    ('"0": "a fox",\n"16" "a forest"', 32, 0, "line 2 of the schedule is not a schedule entry: '\"16\" \"a forest\"'"),
    ('0 = "a fox",\n16 = a forest', 32, 0, "line 2 .*Write one entry per keyframe as 16 = \"a fox running\""),
    ("0: a fox\n8: b\n0: c", 32, 0, "frame 0 has two keyframes \\(line 1 and line 3\\)"),
    ('"-1": "a", "31": "b"', 32, 0, "frame 31 has two keyframes"),
    ("0:16: a\n8: b", 32, 0, "line 2: keyframe 8 lies inside the range 0:16 of line 1"),
    ("8:4: a", 32, 0, "the range 8:4 holds no frame"),
    ("-40: a", 32, 0, "-40 is before the first frame of this 32-frame video"),
    ('"1.5": "a"', 32, 0, "the fraction 1.5 is not between 0 and 1"),
    ("-1: a", 32, 64, "'-1' counts from this video's length.*start_frame is 64: write frame numbers"),
])
def test_bad_schedules_are_refused_by_line(schedule, text, frames, start_frame, message):
    with pytest.raises(schedule.ScheduleError, match=message):
        schedule.keyframes(text, frames, start_frame)


# --- the conditioning ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(host):
    import nodes
    with torch.inference_mode():  # as ComfyUI runs nodes (the March-2024 CLIP initialises weights in place)
        return nodes.CheckpointLoaderSimple().load_checkpoint(stand_ins.narrow_sd15_checkpoint(host))[1]


class CountingCLIP:
    """The checkpoint's CLIP, counting its encodes (a plain wrapper object: ComfyUI itself is not patched)."""

    def __init__(self, clip):
        self.clip, self.encoded = clip, []

    def tokenize(self, text, **kwargs):
        return self.clip.tokenize(text, **kwargs)

    def encode_from_tokens(self, tokens, **kwargs):
        self.encoded.append(tokens)
        return self.clip.encode_from_tokens(tokens, **kwargs)


def text_encode(clip, text):
    """CLIP Text Encode's (cond, pooled): the oracle."""
    import nodes
    [[cond, extra]] = nodes.CLIPTextEncode().encode(clip, text)[0]
    return cond, extra["pooled_output"]


def run_node(pack, clip, text, frames=16, **kwargs):
    inputs = {"pre_text": "", "app_text": "", "start_frame": 0, "interpolation": "linear", **kwargs}
    with torch.inference_mode():
        out = pack.nodes.prompt_nodes.PromptSchedule().encode(clip, text, frames=frames, **inputs)
    result = out["result"] if isinstance(out, dict) else out
    [[cond, extra]] = result[0]
    return cond, extra["pooled_output"], (out.get("ui") if isinstance(out, dict) else None)


def test_keyframes_are_clip_text_encode_exactly_and_between_them_the_stated_blend(pack, clip):
    text = "0: a fox sleeping\n8: (a fox running:1.3)\n12:: a forest at night"
    cond, pooled, ui = run_node(pack, clip, text, frames=16)
    assert cond.shape == (16, 77, 768) and pooled.shape == (16, 768) and ui is None
    with torch.inference_mode():
        sleeping, running, forest = (text_encode(clip, t) for t in ("a fox sleeping", "(a fox running:1.3)",
                                                                    "a forest at night"))
        plain_running = text_encode(clip, "a fox running")
    assert not torch.equal(running[0], plain_running[0])  # the weighting reached CLIP
    for frame, (c, p) in {0: sleeping, 8: running, 12: forest, 13: forest, 15: forest}.items():
        assert torch.equal(cond[frame], c[0]) and torch.equal(pooled[frame], p[0]), frame
    for frame in range(1, 8):  # (1 - w)·E(0) + w·E(8), w = frame / 8, in float64
        w = frame / 8
        torch.testing.assert_close(cond[frame].double(), (1 - w) * sleeping[0][0].double() + w * running[0][0].double(),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pooled[frame].double(),
                                   (1 - w) * sleeping[1][0].double() + w * running[1][0].double(), atol=1e-5, rtol=1e-5)
    for frame in range(9, 12):
        w = (frame - 8) / 4
        torch.testing.assert_close(cond[frame].double(), (1 - w) * running[0][0].double() + w * forest[0][0].double(),
                                   atol=1e-5, rtol=1e-5)
    held, _, _ = run_node(pack, clip, text, frames=16, interpolation="none")
    assert all(torch.equal(held[f], sleeping[0][0]) for f in range(8))
    assert all(torch.equal(held[f], running[0][0]) for f in range(8, 12))


def test_start_frame_continues_the_story(pack, clip):
    text = "0: a fox sleeping\n20: a fox running\n40: a forest"
    whole, whole_pooled, _ = run_node(pack, clip, text, frames=48)
    for start, frames in ((0, 16), (16, 16), (32, 16), (5, 30)):
        part, part_pooled, _ = run_node(pack, clip, text, frames=frames, start_frame=start)
        assert torch.equal(part, whole[start:start + frames]) and torch.equal(part_pooled, whole_pooled[start:start + frames])


def test_each_distinct_prompt_is_encoded_once(pack, clip):
    counting = CountingCLIP(clip)
    text = "0:4: a fox\n8: a fox running\n16: a fox\n24: a forest\n32: a fox running"
    cond, _, _ = run_node(pack, counting, text, frames=256)
    assert len(counting.encoded) == 3 and cond.shape[0] == 256
    one = CountingCLIP(clip)
    run_node(pack, one, "0: a fox", frames=1024)
    assert len(one.encoded) == 1


def test_a_long_prompt_blends_with_a_short_one(pack, clip):
    long_prompt = ", ".join(["a very detailed fox in the snow"] * 14)  # over 75 tokens: two 77-token chunks
    cond, _, _ = run_node(pack, clip, f"0: a fox\n4: {long_prompt}", frames=6)
    with torch.inference_mode():
        short, long = text_encode(clip, "a fox")[0], text_encode(clip, long_prompt)[0]
    assert long.shape[1] == 154 and cond.shape == (6, 154, 768)
    assert torch.equal(cond[0], short[0].repeat(2, 1)) and torch.equal(cond[4], long[0])


def test_frames_come_from_the_latent_and_late_keyframes_are_named(pack, clip):
    cond, _, ui = run_node(pack, clip, "0: a fox\n8: a forest", frames=3, latent={"samples": torch.zeros(12, 4, 8, 8)})
    assert cond.shape[0] == 12 and ui is None
    cond, _, ui = run_node(pack, clip, "0: a fox\n16: a forest\n32: night", frames=10)
    assert cond.shape[0] == 10
    [warning] = ui["animatelcm_warnings"]
    assert "keyframes 16 (line 2), 32 (line 3) after this video's last frame (9)" in warning
    assert "start_frame 10" in warning
    with pytest.raises(ValueError, match="'clip' is empty"):
        run_node(pack, None, "0: a fox")


# --- the sampler refuses a conditioning of another length ---------------------------------------------

@pytest.mark.parametrize("rows, frames", [(3, 4), (16, 8), (8, 16)])
def test_the_sampler_refuses_conditioning_of_another_frame_count(pack, tiny_model, rows, frames):
    per_frame = [[torch.zeros(rows, 77, 768), {}]]
    one = [[torch.zeros(1, 77, 768), {}]]
    node = pack.nodes.sampler_nodes.AnimateLCMSampler()
    latent = {"samples": torch.zeros(frames, 4, 8, 8)}
    for positive, negative, name in ((per_frame, one, "positive"), (one, per_frame, "negative")):
        with pytest.raises(ValueError, match=f"'{name}' holds conditioning for {rows} frames, but latent_image has "
                                             f"{frames} frames"):
            node.sample(tiny_model, positive, negative, latent, 0, 1, 1.5, 1.0, "text-to-video")
