"""Prompt Schedule: the formats users write read into hand-checked keyframes, bad lines refused by line, and the
per-frame CONDITIONING checked against CLIP Text Encode (ComfyUI's own node) and a plain blend written here."""
import json
import re

import pytest
import torch

import stand_ins
from fixture_clip import WrappedCLIP, cancel_at

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


# --- a mistyped keyframe, FizzNodes' JSON strings, --neg and expressions ------------------------------

@pytest.mark.parametrize("line, fixed", [
    ("4 - a forest", "4: a forest"), ("4 – a forest", "4: a forest"), ("4- a forest", "4: a forest"),
    ("4. a forest", "4: a forest"), ("4) a forest", "4: a forest"), ("4, a forest", "4: a forest"),
    ("1e1: a forest", "10: a forest"), ("+4: a forest", "4: a forest"), ("4 => a forest", "4: a forest"),
    ("16", "16: your prompt"), ("0.5 - a forest", "0.5: a forest"),
])
def test_a_mistyped_keyframe_line_is_refused_with_the_line_to_write(schedule, line, fixed):
    expected = re.escape(f"is not a schedule entry: '{line}'. Write '{fixed}' (frame number, a colon, the prompt")
    for text, number in ((f"0: a fox\n{line}", 2), (f"{line}\n0: a fox", 1), (f"0: a fox\n{line}\n8: b", 2)):
        with pytest.raises(schedule.ScheduleError, match=f"line {number} of the schedule {expected}.*pre_text"):
            schedule.keyframes(text, 16)


@pytest.mark.parametrize("line", ["4k photo", "1girl, solo", "8 bit", "3d render", "35mm film grain", "2 foxes playing",
                                  "1990s film", "4-legged robot", "1.5x zoom", "100% detail", "2.5D style"])
def test_prose_that_starts_with_a_number_stays_text_for_every_prompt(schedule, line):
    assert keys(schedule, f"{line}\n0: a fox\n8: a forest\n{line}") == [
        (0, f"{line}, a fox, {line}", False), (8, f"{line}, a forest, {line}", False)]


def test_json_strings_are_decoded_as_json_loads_does(schedule):
    written = r'caf\u00e9 \"noir\" \ud83e\udd8a tab\there a\\b \/'
    [(_, prompt, _)] = keys(schedule, f'"0": "{written}"')
    assert prompt == json.loads(f'"{written}"') == 'caf\u00e9 "noir" \U0001f98a tab\there a\\b /'
    # a backslash JSON gives no meaning to stays (ComfyUI's escaped bracket, \( ); other forms keep what is written
    assert keys(schedule, r'"0": "a \(fox\)"')[0][1] == r"a \(fox\)"
    assert keys(schedule, r"0: caf\u00e9")[0][1] == r"caf\u00e9"
    assert keys(schedule, r'0 = "caf\u00e9 \"noir\""')[0][1] == r'caf\u00e9 "noir"'
    with pytest.raises(schedule.ScheduleError, match=r"line 2: '\\ud83e' is half of a character"):
        schedule.keyframes('"0": "a",\n"8": "a \\ud83e fox"', 16)


def test_neg_splits_every_part_into_positive_and_negative_as_fizznodes_does(schedule):
    text = '"0": "a fox --neg blurry", "8": "a forest", "12": "--neg night"'
    points = schedule.keyframes(text, 16, pre_text="film still --neg lowres", app_text="4k")
    assert [(k.frame, k.prompt, k.negative) for k in points] == [
        (0, "film still, a fox, 4k", "lowres, blurry"), (8, "film still, a forest, 4k", "lowres"),
        (12, "film still, 4k", "lowres, night")]
    lines = schedule.keyframes("masterpiece --neg worst quality\n0: a fox --neg blurry\n8: a forest", 16)
    assert [(k.prompt, k.negative) for k in lines] == [("masterpiece, a fox", "worst quality, blurry"),
                                                        ("masterpiece, a forest", "worst quality")]
    assert not schedule.has_negative(schedule.keyframes("0: a fox\n8: a forest", 16))
    assert schedule.has_negative(lines)
    negative = schedule.blend(points, 16, negative=True)
    assert negative.prompts == ["lowres, blurry", "lowres", "lowres, night"]
    with pytest.raises(schedule.ScheduleError, match="line 1: '--neg' is written twice"):
        schedule.keyframes("0: a --neg b --neg c", 16)


@pytest.mark.parametrize("text, where", [
    ('"0": "a (fox:`0.5 + t/16`)"', "line 1"), ("0: a fox\n8: a (forest:`pw_a`)", "line 2"),
    ("`max_f`\n0: a fox", "line 1")])
def test_fizznodes_expressions_are_refused_by_name_never_read_as_words(schedule, text, where):
    expression = re.search(r"`[^`]*`", text).group(0)
    with pytest.raises(schedule.ScheduleError, match=f"{where}: {re.escape(expression)} is a FizzNodes expression"):
        schedule.keyframes(text, 16)
    with pytest.raises(schedule.ScheduleError, match="pre_text: `t` is a FizzNodes expression"):
        schedule.keyframes("0: a fox", 16, pre_text="(snow:`t`)")


def test_only_the_prompts_this_video_shows_are_in_the_plan(schedule):
    many = "\n".join(f"{4 * k}: prompt {k}" for k in range(100))  # keyframes far past 8 frames
    assert schedule.blend(schedule.keyframes(many, 8), 8).prompts == ["prompt 0", "prompt 1", "prompt 2"]
    held = schedule.blend(schedule.keyframes("0: a\n4:: b\n8: c\n12: d", 8), 8)  # b held to 8: c never shows
    assert held.prompts == ["a", "b"]
    later = schedule.blend(schedule.keyframes(many, 8, start_frame=40), 8, start_frame=40)
    assert later.prompts == ["prompt 10", "prompt 11", "prompt 12"]


# --- the conditioning ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(host):
    import nodes
    with torch.inference_mode():  # as ComfyUI runs nodes (the March-2024 CLIP initialises weights in place)
        return nodes.CheckpointLoaderSimple().load_checkpoint(stand_ins.narrow_sd15_checkpoint(host))[1]


def text_encode(clip, text):
    """CLIP Text Encode's (cond, pooled): the oracle."""
    import nodes
    [[cond, extra]] = nodes.CLIPTextEncode().encode(clip, text)[0]
    return cond, extra["pooled_output"]


def node_outputs(pack, clip, text, frames=16, **kwargs):
    """(the node's outputs, its ui or None), run as ComfyUI runs it (inference mode)."""
    inputs = {"pre_text": "", "app_text": "", "start_frame": 0, "interpolation": "linear", **kwargs}
    with torch.inference_mode():
        out = pack.nodes.prompt_nodes.PromptSchedule().encode(clip, text, frames=frames, **inputs)
    return (out["result"], out.get("ui")) if isinstance(out, dict) else (out, None)


def run_node(pack, clip, text, frames=16, **kwargs):
    """(cond, pooled, ui) of the node's first output."""
    outputs, ui = node_outputs(pack, clip, text, frames, **kwargs)
    [[cond, extra]] = outputs[0]
    return cond, extra["pooled_output"], ui


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
    counting = WrappedCLIP(clip)
    text = "0:4: a fox\n8: a fox running\n16: a fox\n24: a forest\n32: a fox running"
    cond, _, _ = run_node(pack, counting, text, frames=256)
    assert len(counting.encoded) == 3 + 1 and cond.shape[0] == 256  # and the negative output's empty prompt
    one = WrappedCLIP(clip)
    run_node(pack, one, "0: a fox", frames=1024)
    assert len(one.encoded) == 1 + 1


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


def prompt_of_chunks(word, chunks):
    """A prompt CLIP encodes in `chunks` 77-token chunks (75 words of one token each fill a chunk)."""
    return " ".join([word] * (75 * (chunks - 1) + 5))


def test_blends_on_the_device_where_clip_hands_back_its_encodings(pack, clip):
    """--gpu-only keeps CLIP's output on the GPU; the meta device stands in for that other device here."""
    meta = WrappedCLIP(clip, device=torch.device("meta"))
    text = f"0: a fox --neg blurry\n8: {prompt_of_chunks('fox', 2)} --neg night\n12: a forest"
    outputs, _ = node_outputs(pack, meta, text, frames=16)
    [[cond, extra]], [[negative, negative_extra]] = outputs
    assert cond.shape == (16, 154, 768) and negative.shape == (16, 77, 768)
    tensors = (cond, extra["pooled_output"], negative, negative_extra["pooled_output"])
    assert {t.device.type for t in tensors} == {"meta"}


def test_prompts_of_different_lengths_keep_the_longest_exact_and_the_memory_bounded(pack, clip):
    """2-, 3-, 4- and 5-chunk prompts: the rule of docs/maths.md (least common multiple only up to twice the
    longest, else the longest, shorter ones repeated whole and the rest zeros), never the 60-chunk multiple."""
    words = {2: "fox", 3: "owl", 4: "cat", 5: "dog"}
    prompts = {n: prompt_of_chunks(word, n) for n, word in words.items()}
    cond, _, _ = run_node(pack, clip, "\n".join(f"{8 * i}: {prompts[n]}" for i, n in enumerate(words)), frames=32)
    with torch.inference_mode():
        encoded = {n: text_encode(clip, prompt)[0][0] for n, prompt in prompts.items()}
    assert [encoded[n].shape[0] for n in words] == [154, 231, 308, 385]
    longest_alone = 32 * 385 * 768 * 4  # bytes of the 5-chunk prompt alone on every frame
    assert cond.shape == (32, 385, 768) and cond.numel() * cond.element_size() <= 2 * longest_alone
    assert all(torch.equal(cond[f], encoded[5]) for f in (24, 31))  # held on the longest: CLIP Text Encode's
    zeros = torch.zeros(77, 768)
    assert torch.equal(cond[0], torch.cat([encoded[2], encoded[2], zeros]))
    assert torch.equal(cond[8], torch.cat([encoded[3], zeros, zeros]))
    assert torch.equal(cond[16], torch.cat([encoded[4], zeros]))
    # lengths whose least common multiple is at most twice the longest (1, 2, 3 chunks: 6): every held frame is
    # CLIP Text Encode's own, repeated whole, which cross-attention reads as the same prompt
    cond, _, _ = run_node(pack, clip, f"0: {prompts[2]}\n4: {prompts[3]}\n6:: a fox", frames=8)
    with torch.inference_mode():
        short = text_encode(clip, "a fox")[0][0]
    assert cond.shape == (8, 462, 768)
    assert torch.equal(cond[0], encoded[2].repeat(3, 1)) and torch.equal(cond[4], encoded[3].repeat(2, 1))
    assert all(torch.equal(cond[f], short.repeat(6, 1)) for f in (6, 7))


def test_cross_attention_reads_a_repeated_prompt_as_itself_and_zero_rows_as_dilution(host):
    """Why the rule repeats before it pads (docs/maths.md), on the host's own cross-attention: keys and values
    repeated whole give the same output; zero rows (to_k and to_v have no bias: zero keys and values) each add
    exp(0) = 1 to the softmax's sum, scaling every head's output by Z / (Z + zeros)."""
    import comfy.ops
    from comfy.ldm.modules.attention import CrossAttention
    generator = torch.Generator().manual_seed(0)
    heads, dim_head = 2, 16
    attention = CrossAttention(query_dim=32, context_dim=24, heads=heads, dim_head=dim_head,
                               operations=comfy.ops.disable_weight_init)
    for parameter in attention.parameters():
        parameter.data = torch.randn(parameter.shape, generator=generator) * 0.3
    assert attention.to_k.bias is None and attention.to_v.bias is None
    x, context = torch.randn(1, 10, 32, generator=generator), torch.randn(1, 7, 24, generator=generator)
    with torch.no_grad():
        plain = attention(x, context=context)
        repeated = attention(x, context=context.repeat(1, 3, 1))
        padded = attention(x, context=torch.cat([context, torch.zeros(1, 5, 24)], dim=1))
        q, k, v = (layer(t).view(1, -1, heads, dim_head).transpose(1, 2).double()
                   for layer, t in ((attention.to_q, x), (attention.to_k, context), (attention.to_v, context)))
        scores = q @ k.transpose(-1, -2) / dim_head ** 0.5
        total = scores.exp().sum(-1, keepdim=True)
        diluted = (scores.softmax(-1) @ v) * total / (total + 5)
        expected = attention.to_out(diluted.transpose(1, 2).reshape(1, 10, heads * dim_head).float())
    torch.testing.assert_close(repeated, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, expected, atol=1e-5, rtol=1e-5)
    assert (padded - plain).abs().max() > 1e-2  # zero padding is not neutral


def test_neg_makes_the_negative_output_and_never_reaches_clip_as_words(pack, clip):
    node = pack.nodes.prompt_nodes.PromptSchedule
    assert node.RETURN_TYPES == ("CONDITIONING", "CONDITIONING") and node.RETURN_NAMES[0] == "CONDITIONING"
    text = '"0": "a fox --neg blurry", "8": "a forest --neg night"'
    outputs, _ = node_outputs(pack, clip, text, frames=12, pre_text="film still --neg lowres")
    [[positive, _]], [[negative, negative_extra]] = outputs
    with torch.inference_mode():
        fox, forest, blurry, night = (text_encode(clip, t) for t in (
            "film still, a fox", "film still, a forest", "lowres, blurry", "lowres, night"))
    assert torch.equal(positive[0], fox[0][0]) and torch.equal(positive[8], forest[0][0])
    assert negative.shape == (12, 77, 768)
    assert torch.equal(negative[0], blurry[0][0]) and torch.equal(negative[11], night[0][0])
    assert torch.equal(negative_extra["pooled_output"][0], blurry[1][0])
    torch.testing.assert_close(negative[4].double(), 0.5 * blurry[0][0].double() + 0.5 * night[0][0].double(),
                               atol=1e-5, rtol=1e-5)
    # without --neg: what CLIP Text Encode gives for an empty prompt, one row (samplers apply it to every frame)
    outputs, _ = node_outputs(pack, clip, "0: a fox\n8: a forest", frames=12)
    [[negative, negative_extra]] = outputs[1]
    with torch.inference_mode():
        empty = text_encode(clip, "")
    assert torch.equal(negative, empty[0]) and torch.equal(negative_extra["pooled_output"], empty[1])


def test_only_the_prompts_the_video_shows_are_encoded_with_progress_and_cancel_between_encodes(host, pack, clip):
    import comfy.model_management
    many = "\n".join(f"{4 * k}: a fox, scene {k}" for k in range(100))
    counting = WrappedCLIP(clip)
    host.progress.clear()
    cond, _, _ = run_node(pack, counting, many, frames=8)
    assert cond.shape[0] == 8 and len(counting.encoded) == 4  # scenes 0, 1, 2 and the empty negative
    assert [value for value, total, _ in host.progress] == [1, 2, 3, 4] and {t for _, t, _ in host.progress} == {4}
    cancelling = WrappedCLIP(clip, on_encode=cancel_at(2))
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run_node(pack, cancelling, many, frames=400)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert len(cancelling.encoded) == 2  # the encode under way ends; none starts after Cancel


def test_a_conditioning_too_large_is_refused_before_it_is_made(pack, clip):
    """The bound is 2 GiB per output: frames x (tokens + 1 pooled row) x 768 float32 values."""
    meta = WrappedCLIP(clip, device=torch.device("meta"))  # nothing is allocated, whatever the size
    text = f"0: {prompt_of_chunks('fox', 2)}\n8: a forest"
    gib = 100000 * (154 + 1) * 768 * 4 / 2 ** 30
    message = (rf"100000 frames x 154 tokens x 768 values \(float32\) make a conditioning of {gib:.1f} GiB, over the "
               r"2 GiB .*fewer frames.*shorter prompts.*start_frame")
    with pytest.raises(ValueError, match=message):
        run_node(pack, meta, text, frames=100000)
    most = 2 ** 31 // ((77 + 1) * 768 * 4)  # one-chunk prompts: 8962 frames
    assert run_node(pack, meta, "0: a fox\n8: a forest", frames=most)[0].shape == (most, 77, 768)
    with pytest.raises(ValueError, match=f"{most + 1} frames x 77 tokens"):
        run_node(pack, meta, "0: a fox\n8: a forest", frames=most + 1)
    with pytest.raises(ValueError, match="100000 frames x 77 tokens"):  # the real CLIP: refused before allocating
        run_node(pack, clip, "0: a fox\n8: a forest", frames=100000)
    assert "2 GiB" in pack.nodes.prompt_nodes.PromptSchedule.INPUT_TYPES()["required"]["frames"][1]["tooltip"]


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
